// swift-tools-version:6.2
import PackageDescription

// A tool-calling agent loop recorded with EvalForgeSDK's step API: agent → LLM calls → tool spans,
// over a multi-turn conversation with a session id and a user id.
let package = Package(
    name: "AgentLoop",
    platforms: [.macOS(.v15)],
    dependencies: [.package(name: "evalforge", path: "../..", traits: [])],
    targets: [
        .executableTarget(name: "AgentLoop", dependencies: [.product(name: "EvalForgeSDK", package: "evalforge")]),
    ],
    swiftLanguageModes: [.v6]
)
