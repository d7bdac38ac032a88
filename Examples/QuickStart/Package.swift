// swift-tools-version:6.2
import PackageDescription

// The smallest use of EvalForgeSDK: instrumented OpenAI and Anthropic calls (to the mock LLM by default).
let package = Package(
    name: "QuickStart",
    platforms: [.macOS(.v15)],
    dependencies: [.package(name: "evalforge", path: "../..", traits: [])],
    targets: [
        .executableTarget(name: "QuickStart", dependencies: [.product(name: "EvalForgeSDK", package: "evalforge")]),
    ]
)
