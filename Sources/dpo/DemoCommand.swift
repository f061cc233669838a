import ArgumentParser
import DPOTools
import Distributed
import Foundation
import Training

/// `dpo demo`: the built-in demonstration that DPO improves a model at a checkable task.
struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "SFT a small model from scratch on arithmetic answers of mixed quality, DPO it against the SFT model, and print the task accuracy before and after.",
        discussion: """
        Writes OUT/data/ (the three JSONL files), OUT/init/, OUT/sft/ and OUT/dpo/ (training runs with metrics.jsonl \
        and TensorBoard events), OUT/demo_report.json and .md, and OUT/plots/demo.svg and .png. Seeds are fixed: the \
        same numbers on every run with the same rank count. Run under mpirun for data parallelism \
        (./launch/demo.sh runs it on 2 ranks); the global batch stays the same.
        Example: dpo demo --out runs/demo
        """)

    @Option(help: ArgumentHelp("Output directory (must be empty, missing, or an earlier demo's).", valueName: "dir"))
    var out: String = "runs/demo"

    @Flag(help: "Exit with status 1 when DPO does not raise the held-out task accuracy (used by CI).")
    var requireImprovement = false

    @Flag(help: "A shortened demo (for CI) that still shows the improvement.")
    var quick = false

    @Option(help: ArgumentHelp("Expected number of MPI ranks; the demo stops if mpirun started another number (default: whatever was launched).", valueName: "n"))
    var ranks: Int?

    @Option(help: ArgumentHelp("SFT epochs (default: the demo's setting).", valueName: "n")) var sftEpochs: Int?
    @Option(help: ArgumentHelp("Share of wrong SFT answers in [0, 1) (default: the demo's setting).", valueName: "share")) var sftWrongShare: Double?
    @Option(help: ArgumentHelp("DPO epochs (default: the demo's setting).", valueName: "n")) var dpoEpochs: Int?
    @Option(help: ArgumentHelp("DPO learning rate (default: the demo's setting).", valueName: "lr")) var dpoLr: Double?
    @Option(help: ArgumentHelp("DPO beta (default: the demo's setting).", valueName: "beta")) var beta: Double?
    @Option(help: ArgumentHelp("Weight of the chosen NLL added to the DPO loss, 0 = plain DPO (default: the demo's setting).", valueName: "a")) var rpoAlpha: Double?

    func validate() throws {
        if let sftEpochs, sftEpochs < 1 { throw ValidationError("--sft-epochs must be at least 1, got \(sftEpochs)") }
        if let dpoEpochs, dpoEpochs < 1 { throw ValidationError("--dpo-epochs must be at least 1, got \(dpoEpochs)") }
        if let sftWrongShare, !(0..<1).contains(sftWrongShare) { throw ValidationError("--sft-wrong-share must be in [0, 1), got \(sftWrongShare)") }
        if let dpoLr, !(dpoLr > 0) { throw ValidationError("--dpo-lr must be positive, got \(dpoLr)") }
        if let beta, !(beta > 0) { throw ValidationError("--beta must be positive, got \(beta)") }
        if let rpoAlpha, !(rpoAlpha >= 0) { throw ValidationError("--rpo-alpha must be >= 0, got \(rpoAlpha)") }
        if let ranks, ranks < 1 { throw ValidationError("--ranks must be at least 1, got \(ranks)") }
        if out.isEmpty { throw ValidationError("--out must name a directory") }
    }

    func run() throws {
        try ShutdownSignal.install()
        var parameters = quick ? DemoParameters.quick(outputDirectory: out) : DemoParameters.standard(outputDirectory: out)
        if let sftEpochs { parameters.sftEpochs = sftEpochs }
        if let sftWrongShare { parameters.sftWrongShare = sftWrongShare }
        if let dpoEpochs { parameters.dpoEpochs = dpoEpochs }
        if let dpoLr { parameters.dpoLearningRate = dpoLr }
        if let beta { parameters.beta = beta }
        if let rpoAlpha { parameters.rpoAlpha = rpoAlpha }
        try World.run { communicator in
            if let ranks, ranks != communicator.size {
                throw DemoError.invalidOption(
                    "--ranks \(ranks) but this process is one of \(communicator.size) rank(s); start it with "
                        + (ranks == 1 ? "no launcher" : "./launch/local.sh -n \(ranks) -- demo ... (or mpirun -np \(ranks) dpo demo ...)"))
            }
            let demo = DemoRun(parameters: parameters, communicator: communicator)
            guard communicator.isPrimary else {
                _ = try demo.run()
                return
            }
            var errorStream = FileHandleOutputStream(.standardError)
            let reporter = ProgressReporter(output: FileHandleOutputStream(.standardError), mode: .detect(fileDescriptor: STDERR_FILENO))
            demo.onMessage = { reporter.message($0) }
            demo.onProgress = { _, snapshot in
                if reporter.mode == .interactive || snapshot.step % 25 == 0 || snapshot.step == snapshot.totalSteps {
                    reporter.update(snapshot)
                }
            }
            let report = try demo.run()
            reporter.finish()
            print("", to: &errorStream)
            for line in report.lines { print(line) }
            print("report: \(out)/demo_report.md, plots: \(out)/plots/demo.png, runs: \(out)/sft, \(out)/dpo")
            if requireImprovement && !(report.heldOutAccuracyGain > 0) {
                throw DemoError.noImprovement(
                    String(format: "held-out task accuracy went from %.1f%% to %.1f%%: DPO did not improve the task score",
                           report.sft.heldOutAccuracy * 100, report.dpo.heldOutAccuracy * 100))
            }
        }
    }
}
