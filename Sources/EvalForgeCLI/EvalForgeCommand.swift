import ArgumentParser

@main
struct EvalForgeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evalforge",
        abstract: "EvalForge: LLM observability and evaluation.",
        subcommands: [DevCommand.self, SeedCommand.self, LoadCommand.self, BackendCommand.self, CollectorCommand.self, MockLLMCommand.self, DemoCommand.self, InspectCommand.self, AdminCommand.self]
    )
}
