import ArgumentParser
import Backend
import EvalForgeCore
import EvalForgeStore

@main
struct EvalForgeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evalforge",
        abstract: "EvalForge: LLM observability and evaluation.",
        version: versionText,
        subcommands: [DevCommand.self, SeedCommand.self, LoadCommand.self, BackendCommand.self, CollectorCommand.self, MockLLMCommand.self, DemoCommand.self, InspectCommand.self, AdminCommand.self]
    )

    /// `evalforge --version`: the release and every schema and format version this build writes
    /// (docs/deployment.md, "Rolling upgrades", says which may differ across a roll).
    static var versionText: String {
        "evalforge \(EvalForgeVersion.release) (schema: clickhouse \(StoreSchemaVersions.clickHouse), sqlite telemetry \(StoreSchemaVersions.sqliteTelemetry), "
            + "metadata \(BackendReadiness.metadataSchemaVersion); forward protocol \(EvalForgeVersion.forwardProtocol), collector queue format \(EvalForgeVersion.collectorQueueFormat))"
    }
}
