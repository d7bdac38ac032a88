// swift-tools-version:6.2
import PackageDescription

// Offline evaluation over a small JSONL dataset: each item runs through the SDK against an LLM, is
// scored with simple checks (exact, contains, JSON validity), and the scores can be posted to the
// EvalForge backend's scores API.
let package = Package(
    name: "OfflineEval",
    platforms: [.macOS(.v15)],
    dependencies: [.package(name: "evalforge", path: "../..", traits: [])],
    targets: [
        .executableTarget(name: "OfflineEval", dependencies: [.product(name: "EvalForgeSDK", package: "evalforge")]),
    ],
    swiftLanguageModes: [.v6]
)
