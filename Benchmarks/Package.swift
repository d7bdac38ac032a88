// swift-tools-version:6.2
// Benchmarks for evalforge. A separate package so that the comparison peer (swift-otel) and its
// dependency graph never enter the main package. Run through `scripts/bench NAME`.
import PackageDescription

let package = Package(
    name: "evalforge-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "evalforge", path: ".."),
        // The peer for `scripts/bench sdk`: only its OTLP/HTTP exporter (no gRPC stack to build).
        .package(url: "https://github.com/swift-otel/swift-otel.git", from: "1.6.0", traits: ["OTLPHTTP"]),
        // swift-otel brings swift-nio; declared so the bench can run its own OTLP/HTTP receiver.
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.3"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        // The bare peer of the AsyncHTTPClient transport figures.
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
    ],
    targets: [
        // Counts malloc/calloc/realloc/memalign calls per thread (interposes glibc's allocator).
        .target(name: "CAllocCounter", path: "Sources/CAllocCounter"),
        .executableTarget(
            name: "SDKBench",
            dependencies: [
                "CAllocCounter",
                .product(name: "EvalForgeSDK", package: "evalforge"),
                .product(name: "EvalForgeCompression", package: "evalforge"),
                .product(name: "EvalForgeAsyncHTTPClient", package: "evalforge"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "OTel", package: "swift-otel"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/SDKBench"
        ),
        // `scripts/bench collector`: drives a release `evalforge collector` child process with a
        // separate load process (this executable with --load) and a backend stand-in.
        .executableTarget(
            name: "CollectorBench",
            dependencies: [
                .product(name: "EvalForgeCompression", package: "evalforge"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            path: "Sources/CollectorBench"
        ),
        // `scripts/bench writer`: the ClickHouse writer (EvalForgeStore) against clickhouse-client
        // inserting the same span rows into the same server.
        .executableTarget(
            name: "WriterBench",
            dependencies: [
                .product(name: "EvalForgeStore", package: "evalforge"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/WriterBench"
        ),
        // `scripts/bench auth`: authentication + rate limiting per request (the backend's middlewares'
        // work) on a real metadata file.
        .executableTarget(
            name: "AuthBench",
            dependencies: [
                .product(name: "EvalForgeBackend", package: "evalforge"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/AuthBench"
        ),
    ],
    swiftLanguageModes: [.v6]
)
