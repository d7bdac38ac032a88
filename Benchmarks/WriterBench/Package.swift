// swift-tools-version:6.2
// `scripts/bench writer`: the ClickHouse writer (EvalForgeStore) against clickhouse-client inserting
// the same span rows into the same server. Its own package so it builds apart (release, in
// .build-bench-writer) from the main package and the other benchmarks.
import PackageDescription

let package = Package(
    name: "evalforge-writer-bench",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "evalforge", path: "../.."),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
    ],
    targets: [
        .executableTarget(
            name: "WriterBench",
            dependencies: [
                .product(name: "EvalForgeStore", package: "evalforge"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
    ]
)
