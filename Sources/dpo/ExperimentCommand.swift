import ArgumentParser
import DPOTools
import Distributed
import Foundation
import Training

/// `dpo experiment`: the experiments that explain DPO, each a table and a plot in one go.
struct ExperimentCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "experiment",
        abstract: "Run an experiment that explains DPO and write its table (printed, .md, .json) and plot (.svg, .png).",
        discussion: """
        beta-sweep: DPO with several betas from the same SFT model: final margin, reward accuracy, task accuracy and \
        drift from the reference. dpo-vs-ipo: pi(rejected) over steps for several betas under DPO and IPO. dpo-vs-sft: \
        SFT on the chosen answers vs DPO (and DPO + chosen NLL) on the same pairs: task score and rejected likelihood. \
        Each starts by training the demo's SFT model in OUT (about half a minute), then its runs under OUT/runs/.
        Example: dpo experiment beta-sweep --out runs/beta-sweep
        """)

    @Argument(help: ArgumentHelp("beta-sweep|dpo-vs-ipo|dpo-vs-sft", valueName: "name"))
    var name: String

    @Option(help: ArgumentHelp("Output directory (default: runs/<name>; must be empty, missing, or an earlier experiment's).", valueName: "dir"))
    var out: String?

    @Flag(help: "Fewer runs and steps (a smoke test; the effects are weaker).")
    var quick = false

    func validate() throws {
        guard Experiment(rawValue: name) != nil else {
            throw ValidationError("unknown experiment '\(name)'; choose one of \(Experiment.allCases.map(\.rawValue).joined(separator: ", "))")
        }
    }

    func run() throws {
        try ShutdownSignal.install()
        let experiment = Experiment(rawValue: name)!
        var parameters = Experiment.Parameters(outputDirectory: out ?? "runs/\(name)")
        parameters.quick = quick
        try World.run { communicator in
            let reporter = ProgressReporter(output: FileHandleOutputStream(.standardError), mode: .detect(fileDescriptor: STDERR_FILENO))
            let table = try experiment.run(
                parameters, communicator: communicator,
                onMessage: communicator.isPrimary ? { reporter.message($0) } : nil,
                onProgress: communicator.isPrimary ? { _, snapshot in
                    if reporter.mode == .interactive || snapshot.step % 50 == 0 || snapshot.step == snapshot.totalSteps { reporter.update(snapshot) }
                } : nil)
            guard communicator.isPrimary else { return }
            reporter.finish()
            for line in table.lines { print(line) }
            print("wrote \(parameters.outputDirectory)/\(name).md, .json, .svg, .png")
        }
    }
}
