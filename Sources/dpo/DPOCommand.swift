import ArgumentParser

/// `dpo`: the command-line entry point. Thin: each subcommand parses its options,
/// builds the library's parameters and calls the library.
@main
struct DPOCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dpo",
        abstract: "Direct Preference Optimization for LLaMA-architecture models on CPUs, data-parallel over MPI.",
        version: DPOCommand.version,
        subcommands: [
            // Subcommands are registered here, one line each.
            TrainCommand.self,
            LogpsCommand.self,
            EvalCommand.self,
            BenchCommand.self,
            PlotCommand.self,
            TokenizeCommand.self,
            InspectDataCommand.self,
            DemoDataCommand.self,
            InitCommand.self,
            GenerateCommand.self,
            ScoreCommand.self,
            DemoCommand.self,
            ExperimentCommand.self,
            MPICheckCommand.self,
            BenchAllreduceCommand.self,
            MergeLoRACommand.self,
        ]
    )

    /// `dpo --version`.
    static let version = "dpo 0.1.0"
}
