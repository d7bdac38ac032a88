// swift-tools-version:6.2
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "evalforge",
    platforms: [.macOS(.v15)],
    products: [
        /// The library services link: records LLM spans and exports OTLP. Light by design:
        /// it depends on swift-distributed-tracing, swift-log and the system zlib only.
        .library(name: "EvalForgeSDK", targets: ["EvalForgeSDK"]),
        .executable(name: "evalforge", targets: ["EvalForgeCLI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.3"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
    ],
    targets: [
        // System zlib (Debian: zlib1g-dev) for gzip of OTLP bodies and batches.
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),

        // Dependency-free shared facts: GenAI attribute keys, the versioned price table,
        // W3C trace context, gzip. Used by the SDK, the collector and the backend.
        .target(
            name: "EvalForgeCore",
            dependencies: ["CZlib"],
            swiftSettings: swiftSettings
        ),

        // The SDK linked by user services.
        .target(
            name: "EvalForgeSDK",
            dependencies: [
                "EvalForgeCore",
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),

        // Generated OTLP protobuf code (see scripts/generate-protos.sh).
        .target(
            name: "EvalForgeOTLP",
            dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")],
            swiftSettings: swiftSettings
        ),

        // The model shared by the collector and the backend: normalized span facts, GenAI attribute
        // normalization, rollups and mergeable latency sketches.
        .target(
            name: "EvalForgeModel",
            dependencies: ["EvalForgeCore", "EvalForgeOTLP"],
            swiftSettings: swiftSettings
        ),

        // The per-host collector pipeline: receive, normalize, dedup, rollups, tail sampling, WAL, forward.
        // A library so the backend's dev mode can host it in-process.
        .target(
            name: "Collector",
            dependencies: [
                "EvalForgeCore", "EvalForgeOTLP", "EvalForgeModel", "CZlib",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: swiftSettings
        ),

        // The mock OpenAI / Anthropic provider (`evalforge mock-llm`).
        .target(
            name: "MockLLM",
            dependencies: [
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),

        // The single `evalforge` executable with its subcommands.
        .executableTarget(
            name: "EvalForgeCLI",
            dependencies: [
                "EvalForgeSDK",
                "MockLLM",
                "Collector",
                "EvalForgeModel",
                "EvalForgeOTLP",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),

        .testTarget(
            name: "EvalForgeSDKTests",
            dependencies: [
                "EvalForgeSDK",
                "EvalForgeCore",
                "EvalForgeOTLP",
                "MockLLM",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CollectorTests",
            dependencies: [
                "Collector", "EvalForgeModel", "EvalForgeOTLP", "EvalForgeCore", "EvalForgeSDK",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "MockLLMTests",
            dependencies: [
                "MockLLM",
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
