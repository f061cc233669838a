import ArgumentParser

/// `dpo bench ...`: micro-benchmarks that print one JSON line each.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks that print one JSON line.",
        subcommands: [
            BenchDPOCommand.self,
            BenchModelCommand.self,
            BenchTokenizeCommand.self,
            BenchAllreduceGroupCommand.self,
        ]
    )
}
