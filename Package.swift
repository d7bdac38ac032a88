// swift-tools-version:6.2
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

/// A dependency only the collector, the backend, the CLI and their tests need. Guarded by the `Server`
/// trait (on by default), so a service that depends on EvalForgeSDK with `traits: []` resolves only the
/// SDK's packages (swift-distributed-tracing, swift-log, swift-metrics, swift-service-lifecycle and what
/// they depend on) instead of the server's whole graph.
func server(_ product: String, _ package: String) -> Target.Dependency {
    .product(name: product, package: package, condition: .when(traits: ["Server"]))
}

/// A dependency of an optional SDK transport product, guarded by that product's trait: a service that
/// links EvalForgeAsyncHTTPClient enables `traits: ["AsyncHTTPClient"]` (and EvalForgeOpenAPI
/// `traits: ["OpenAPI"]`), and resolves that transport's packages but not the server's.
func transport(_ trait: String, _ product: String, _ package: String) -> Target.Dependency {
    .product(name: product, package: package, condition: .when(traits: [trait]))
}

let package = Package(
    name: "evalforge",
    platforms: [.macOS(.v15)],
    products: [
        /// The library services link: records LLM spans and exports OTLP. Light by design:
        /// it depends on swift-distributed-tracing, swift-log, swift-metrics, swift-service-lifecycle
        /// and the system zlib only.
        .library(name: "EvalForgeSDK", targets: ["EvalForgeSDK"]),
        /// The instrumented LLM client over AsyncHTTPClient (apart, so EvalForgeSDK links no HTTP stack).
        .library(name: "EvalForgeAsyncHTTPClient", targets: ["EvalForgeAsyncHTTPClient"]),
        /// A swift-openapi-runtime `ClientMiddleware` recording OpenAI- and Anthropic-shaped operations.
        .library(name: "EvalForgeOpenAPI", targets: ["EvalForgeOpenAPI"]),
        /// Body codings (zstd, lz4, gzip); a product so Benchmarks/CollectorBench's sink can inflate batches.
        .library(name: "EvalForgeCompression", targets: ["EvalForgeCompression"]),
        .executable(name: "evalforge", targets: ["EvalForgeCLI"]),
        /// The telemetry store (ClickHouse, SQLite); a product so Benchmarks/WriterBench can link it.
        .library(name: "EvalForgeStore", targets: ["EvalForgeStore", "EvalForgeModel"]),
        /// The backend (ingest, API, rate limits); a product so Benchmarks/AuthBench can link it.
        .library(name: "EvalForgeBackend", targets: ["Backend"]),
    ],
    traits: [
        .trait(name: "Server", description: "The collector, the backend and the evalforge executable, with their dependencies (Hummingbird, AsyncHTTPClient, NIO, SwiftProtobuf, swift-crypto, …). Turn it off (traits: []) when you only link EvalForgeSDK."),
        .trait(name: "AsyncHTTPClient", description: "The EvalForgeAsyncHTTPClient product: the instrumented LLM client over AsyncHTTPClient (swift-nio)."),
        .trait(name: "OpenAPI", description: "The EvalForgeOpenAPI product: a swift-openapi-runtime ClientMiddleware that records LLM operations of generated clients."),
        .default(enabledTraits: ["Server", "AsyncHTTPClient", "OpenAPI"]),
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
        // EvalForgeOpenAPI's middleware, and the transports its tests run it with.
        .package(url: "https://github.com/apple/swift-openapi-runtime.git", from: "1.13.4"),
        .package(url: "https://github.com/apple/swift-openapi-urlsession.git", from: "1.4.0"),
        .package(url: "https://github.com/swift-server/swift-openapi-async-http-client.git", from: "1.5.0"),
        // AES-GCM for secrets at rest (already in the graph through swift-certificates and swift-nio-extras).
        .package(url: "https://github.com/apple/swift-crypto.git", "3.0.0"..<"5.0.0"),
        // The Postgres metadata store (`--postgres-url`): projects, keys, evaluations beside the telemetry.
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        // TLS to Postgres (already in the graph through postgres-nio and async-http-client).
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.36.0"),
    ],
    targets: [
        // System zlib (Debian: zlib1g-dev) for gzip of OTLP bodies and batches.
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        // System zstd (Debian: libzstd-dev): the collector's forwarded batches, zstd request bodies.
        .systemLibrary(name: "CZstd", path: "Sources/CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        // System LZ4 (Debian: liblz4-dev): the collector's default coding of forwarded batches.
        .systemLibrary(name: "CLZ4", path: "Sources/CLZ4", pkgConfig: "liblz4", providers: [.apt(["liblz4-dev"])]),
        // System libdeflate (Debian: libdeflate-dev): CRC-32 of the collector's WAL records, about
        // three times zlib's speed on this machine (6.3 vs 2.2 GB/s), the same checksum.
        .systemLibrary(name: "CDeflate", path: "Sources/CDeflate", pkgConfig: "libdeflate", providers: [.apt(["libdeflate-dev"])]),

        // System SQLite (Debian: libsqlite3-dev): the embedded store and the backend's metadata.
        .systemLibrary(name: "CSQLite", path: "Sources/CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        // System OpenSSL libcrypto (Debian: libssl-dev): SHA-256 of API keys, HMAC of webhooks.
        .systemLibrary(name: "COpenSSL", path: "Sources/COpenSSL", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        // System PCRE2 (Debian: libpcre2-dev): user regexes of evaluators run with match, depth and
        // heap limits (ICU's NSRegularExpression has none: `^(a+)+$` stalled the backend).
        .systemLibrary(name: "CPCRE2", path: "Sources/CPCRE2", pkgConfig: "libpcre2-8", providers: [.apt(["libpcre2-dev"])]),

        // Dependency-free shared facts: GenAI attribute keys, the versioned price table,
        // W3C trace context, gzip. Used by the SDK, the collector and the backend.
        .target(
            name: "EvalForgeCore",
            dependencies: ["CZlib"],
            swiftSettings: swiftSettings
        ),

        // HTTP body codings of the collector and the backend (zstd, lz4, gzip, bounded inflation);
        // apart from EvalForgeCore so the SDK does not link libzstd and liblz4.
        .target(
            name: "EvalForgeCompression",
            dependencies: ["EvalForgeCore", "CZstd", "CLZ4"],
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
                // `EvalForge.Pipeline` is a `Service`: the application runs it in its ServiceGroup.
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),

        // The instrumented LLM client over AsyncHTTPClient (product EvalForgeAsyncHTTPClient).
        .target(
            name: "EvalForgeAsyncHTTPClient",
            dependencies: [
                "EvalForgeSDK",
                transport("AsyncHTTPClient", "AsyncHTTPClient", "async-http-client"),
                transport("AsyncHTTPClient", "NIOCore", "swift-nio"),
                transport("AsyncHTTPClient", "NIOHTTP1", "swift-nio"),
                transport("AsyncHTTPClient", "NIOPosix", "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),

        // A swift-openapi-runtime ClientMiddleware that records LLM operations of generated clients
        // (product EvalForgeOpenAPI); works with any transport.
        .target(
            name: "EvalForgeOpenAPI",
            dependencies: [
                "EvalForgeSDK",
                transport("OpenAPI", "OpenAPIRuntime", "swift-openapi-runtime"),
                transport("OpenAPI", "HTTPTypes", "swift-http-types"),
            ],
            swiftSettings: swiftSettings
        ),

        // Generated OTLP protobuf code (see scripts/generate-protos.sh).
        .target(
            name: "EvalForgeOTLP",
            dependencies: [server("SwiftProtobuf", "swift-protobuf")],
            swiftSettings: swiftSettings
        ),

        // The data model shared by the collector, the store and the backend, with no wire format:
        // span facts, span rows, rollups and mergeable latency sketches, and the bounds every stored
        // number is held to (`IngestBounds`). Apart from EvalForgeIngest so the store and the
        // evaluation runner use rows without linking the OTLP decoders.
        .target(
            name: "EvalForgeModel",
            dependencies: ["EvalForgeCore"],
            swiftSettings: swiftSettings
        ),

        // The one ingest path, shared by the collector and the backend: OTLP/HTTP request decoding
        // (protobuf read in place, JSON through SwiftProtobuf and re-encoded), the GenAI normalizer on
        // span bytes, the protobuf wire readers and writers, the forwarded-batch layout and the
        // span-row reader. A span field is read in one place (docs/architecture.md, "Adding a span field").
        .target(
            name: "EvalForgeIngest",
            dependencies: [
                "EvalForgeCore", "EvalForgeModel", "EvalForgeCompression", "EvalForgeOTLP",
                server("SwiftProtobuf", "swift-protobuf"),
            ],
            swiftSettings: swiftSettings
        ),

        // The per-host collector pipeline: receive, normalize, dedup, rollups, tail sampling, WAL, forward.
        // A library so the backend's dev mode can host it in-process.
        .target(
            name: "Collector",
            dependencies: [
                "EvalForgeCore", "EvalForgeCompression", "EvalForgeOTLP", "EvalForgeModel", "EvalForgeIngest", "EvalForgeCrypto", "CZlib", "CDeflate",
                server("Hummingbird", "hummingbird"),
                server("AsyncHTTPClient", "async-http-client"),
                server("NIOConcurrencyHelpers", "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                server("Prometheus", "swift-prometheus"),
                server("Yams", "Yams"),
            ],
            swiftSettings: swiftSettings
        ),

        // SHA-256, HMAC-SHA256 and secure random bytes over the system OpenSSL; AES-GCM sealing of
        // secrets at rest (provider keys and headers, webhook secrets) with swift-crypto.
        .target(
            name: "EvalForgeCrypto",
            dependencies: ["COpenSSL", "EvalForgeCore", server("Crypto", "swift-crypto")],
            swiftSettings: swiftSettings
        ),

        // Telemetry storage behind one interface (SpanStore): ClickHouse over HTTP and embedded
        // SQLite; plus the metadata database (projects, API keys, evaluations): a SQLite file or Postgres.
        .target(
            name: "EvalForgeStore",
            dependencies: [
                "EvalForgeCore", "EvalForgeModel", "EvalForgeIngest", "EvalForgeCrypto", "CSQLite",
                server("AsyncHTTPClient", "async-http-client"),
                server("PostgresNIO", "postgres-nio"),
                server("NIOSSL", "swift-nio-ssl"),
                server("NIOCore", "swift-nio"),
                server("NIOPosix", "swift-nio"),
                server("NIOConcurrencyHelpers", "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),

        // The evaluation runner: evaluators, online evaluation, datasets, experiments, webhooks.
        .target(
            name: "Evaluation",
            dependencies: [
                "EvalForgeStore", "EvalForgeCore", "EvalForgeModel", "EvalForgeCrypto", "CPCRE2",
                server("AsyncHTTPClient", "async-http-client"),
                server("NIOCore", "swift-nio"),
                server("NIOConcurrencyHelpers", "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),

        // The backend: ingest, query API, web UI, evaluation API (`evalforge backend`).
        .target(
            name: "Backend",
            dependencies: [
                "EvalForgeStore", "Evaluation", "EvalForgeIngest", "EvalForgeModel", "EvalForgeOTLP", "EvalForgeCore", "EvalForgeCompression", "EvalForgeCrypto",
                server("Hummingbird", "hummingbird"),
                server("HTTPTypes", "swift-http-types"),
                server("SwiftProtobuf", "swift-protobuf"),
                server("NIOCore", "swift-nio"),
                server("NIOConcurrencyHelpers", "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                server("Prometheus", "swift-prometheus"),
            ],
            swiftSettings: swiftSettings
        ),

        // The mock OpenAI / Anthropic provider (`evalforge mock-llm`).
        .target(
            name: "MockLLM",
            dependencies: [
                server("Hummingbird", "hummingbird"),
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
                "Backend",
                "EvalForgeStore",
                "Evaluation",
                "EvalForgeModel",
                "EvalForgeIngest",
                "EvalForgeOTLP",
                "EvalForgeCompression",
                server("Prometheus", "swift-prometheus"),
                .product(name: "Metrics", package: "swift-metrics"),
                server("ArgumentParser", "swift-argument-parser"),
                server("AsyncHTTPClient", "async-http-client"),
                server("Hummingbird", "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),

        // Test oracles only: the SwiftProtobuf message path (the message-based GenAI normalizer and
        // `SpanRow(span:)`) the byte-level ingest path is compared against. Never linked by a product.
        .target(
            name: "IngestOracle",
            dependencies: [
                "EvalForgeIngest", "EvalForgeModel", "EvalForgeOTLP", "EvalForgeCore",
                server("SwiftProtobuf", "swift-protobuf"),
            ],
            path: "Tests/IngestOracle",
            swiftSettings: swiftSettings
        ),

        // Test support only: the `evalforge` executable and free loopback ports, for the tests that
        // run real processes (kill -9, power loss, restarts).
        .target(name: "TestProcesses", path: "Tests/TestProcesses", swiftSettings: swiftSettings),

        .testTarget(
            name: "EvalForgeSDKTests",
            dependencies: [
                "EvalForgeSDK",
                "EvalForgeAsyncHTTPClient",
                "EvalForgeOpenAPI",
                server("AsyncHTTPClient", "async-http-client"),
                server("OpenAPIRuntime", "swift-openapi-runtime"),
                server("OpenAPIURLSession", "swift-openapi-urlsession"),
                server("OpenAPIAsyncHTTPClient", "swift-openapi-async-http-client"),
                server("HTTPTypes", "swift-http-types"),
                "EvalForgeCore",
                "EvalForgeOTLP",
                "MockLLM",
                server("Hummingbird", "hummingbird"),
                server("HummingbirdTesting", "hummingbird"),
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CollectorTests",
            dependencies: [
                "Collector", "EvalForgeModel", "EvalForgeIngest", "IngestOracle", "TestProcesses", "EvalForgeOTLP", "EvalForgeCore", "EvalForgeCompression", "EvalForgeSDK",
                server("Hummingbird", "hummingbird"),
                server("HummingbirdTesting", "hummingbird"),
                server("AsyncHTTPClient", "async-http-client"),
                server("Prometheus", "swift-prometheus"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "StoreTests",
            dependencies: [
                "EvalForgeStore", "EvalForgeModel", "EvalForgeIngest", "IngestOracle", "EvalForgeOTLP", "EvalForgeCore", "TestProcesses",
                server("AsyncHTTPClient", "async-http-client"),
                server("SwiftProtobuf", "swift-protobuf"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "BackendTests",
            dependencies: [
                "Backend", "EvalForgeStore", "Evaluation", "Collector", "EvalForgeModel", "EvalForgeIngest", "IngestOracle", "TestProcesses", "EvalForgeOTLP", "EvalForgeCore", "EvalForgeCompression", "EvalForgeSDK", "MockLLM",
                server("Hummingbird", "hummingbird"),
                server("HummingbirdTesting", "hummingbird"),
                server("AsyncHTTPClient", "async-http-client"),
                server("SwiftProtobuf", "swift-protobuf"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "EvaluationTests",
            dependencies: [
                "Evaluation", "EvalForgeStore", "EvalForgeModel", "EvalForgeCrypto", "EvalForgeCore", "MockLLM", "Backend", "TestProcesses",
                server("Hummingbird", "hummingbird"),
                server("HummingbirdTesting", "hummingbird"),
                server("AsyncHTTPClient", "async-http-client"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "MockLLMTests",
            dependencies: [
                "MockLLM",
                server("HTTPTypes", "swift-http-types"),
                server("Hummingbird", "hummingbird"),
                server("HummingbirdTesting", "hummingbird"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)

// Fuzzing (scripts/fuzz, Fuzz/README.md): one libFuzzer executable per surface, declared only when
// EVALFORGE_FUZZ=1, so the normal build (and CI's `swift build --build-tests`) never sees them:
// their entry points are libFuzzer's (`LLVMFuzzerTestOneInput`; with --sanitize=fuzzer SwiftPM
// compiles them as libraries and links libFuzzer's main). They are
// built in debug (testability on) so they can drive the collector's internal steps (replay, seal).
if Context.environment["EVALFORGE_FUZZ"] == "1" {
    package.targets += [
        .target(name: "FuzzSupport", dependencies: ["EvalForgeOTLP"], path: "Fuzz/Sources/FuzzSupport", swiftSettings: swiftSettings),
        .executableTarget(
            name: "FuzzCollector",
            dependencies: ["FuzzSupport", "Collector", "EvalForgeModel", "EvalForgeIngest", "EvalForgeOTLP", "EvalForgeCore", "EvalForgeCompression"],
            path: "Fuzz/Sources/FuzzCollector",
            swiftSettings: swiftSettings
        ),
        // The real backend (router, services, SQLite in a scratch directory) called without a socket.
        .target(
            name: "FuzzBackendSupport",
            dependencies: [
                "FuzzSupport", "Backend", "Collector", "EvalForgeStore", "EvalForgeIngest", "EvalForgeCompression",
                server("Hummingbird", "hummingbird"),
                server("HTTPTypes", "swift-http-types"),
                server("NIOCore", "swift-nio"),
                server("NIOEmbedded", "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Fuzz/Sources/FuzzBackendSupport",
            swiftSettings: swiftSettings
        ),
    ]
    for (name, extra) in [("FuzzBatch", ["EvalForgeStore", "EvalForgeIngest"]), ("FuzzQuery", []), ("FuzzEvaluator", [])] as [(String, [Target.Dependency])] {
        package.targets.append(.executableTarget(
            name: name,
            dependencies: ["FuzzSupport", "FuzzBackendSupport"] + extra,
            path: "Fuzz/Sources/\(name)",
            swiftSettings: swiftSettings
        ))
    }
}
