import ArgumentParser
import DPOTools
import Distributed
import Foundation
import Training

/// `dpo train`: DPO (and the rest of the loss family) on a preference file.
///
/// Thin: options -> `TrainingParameters` (config file first, then the flags given), then
/// `DPOTrainer.run()`. Help texts and defaults come from `TrainingParameters.options`.
struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a policy on preference pairs with DPO (or IPO, hinge, robust, ... see --loss).",
        discussion: """
        Writes OUT/checkpoint-<step>/ every --save-every steps and OUT/final/ at the end (Hugging Face model \
        directories plus trainer state), OUT/train_config.json, OUT/metrics.jsonl and TensorBoard events. \
        Run under mpirun/srun for data parallelism: the global batch is batch-pairs x grad-accum x ranks. \
        --config FILE takes a YAML or JSON mapping with these option names; flags override it.
        Example: dpo train --model runs/sft --data prefs.jsonl --out runs/dpo --beta 0.1 --lr 5e-7
        """)

    private static func help(_ name: String) -> ArgumentHelp {
        let option = TrainingParameters.options.first { $0.name == name }
        return ArgumentHelp(option?.helpWithDefault ?? "", valueName: option?.valueName)
    }

    @Option(name: .customLong("config"), help: ArgumentHelp("YAML or JSON file of options (flag names as keys); flags override it (default: none)", valueName: "FILE"))
    var config: String?

    @Option(name: .customLong("model"), help: help("model"))
    var model: String?

    @Option(name: .customLong("ref-model"), help: help("ref-model"))
    var refModel: String?

    @Option(name: .customLong("data"), help: help("data"))
    var data: String?

    @Option(name: .customLong("eval-data"), help: help("eval-data"))
    var evalData: String?

    @Option(name: .customLong("out"), help: help("out"))
    var out: String?

    @Option(name: .customLong("resume"), help: help("resume"))
    var resume: String?

    @Option(name: .customLong("loss"), help: help("loss"))
    var loss: String?

    @Option(name: .customLong("beta"), parsing: .unconditional, help: help("beta"))
    var beta: Double?

    @Option(name: .customLong("label-smoothing"), parsing: .unconditional, help: help("label-smoothing"))
    var labelSmoothing: Double?

    @Option(name: .customLong("rpo-alpha"), parsing: .unconditional, help: help("rpo-alpha"))
    var rpoAlpha: Double?

    @Option(name: .customLong("lr"), parsing: .unconditional, help: help("lr"))
    var lr: Double?

    @Option(name: .customLong("optimizer"), help: help("optimizer"))
    var optimizer: String?

    @Option(name: .customLong("weight-decay"), parsing: .unconditional, help: help("weight-decay"))
    var weightDecay: Double?

    @Option(name: .customLong("adam-beta1"), parsing: .unconditional, help: help("adam-beta1"))
    var adamBeta1: Double?

    @Option(name: .customLong("adam-beta2"), parsing: .unconditional, help: help("adam-beta2"))
    var adamBeta2: Double?

    @Option(name: .customLong("adam-eps"), parsing: .unconditional, help: help("adam-eps"))
    var adamEps: Double?

    @Option(name: .customLong("schedule"), help: help("schedule"))
    var schedule: String?

    @Option(name: .customLong("warmup-steps"), parsing: .unconditional, help: help("warmup-steps"))
    var warmupSteps: Int?

    @Option(name: .customLong("warmup-ratio"), parsing: .unconditional, help: help("warmup-ratio"))
    var warmupRatio: Double?

    @Option(name: .customLong("max-grad-norm"), parsing: .unconditional, help: help("max-grad-norm"))
    var maxGradNorm: Double?

    @Option(name: .customLong("batch-pairs"), parsing: .unconditional, help: help("batch-pairs"))
    var batchPairs: Int?

    @Option(name: .customLong("grad-accum"), parsing: .unconditional, help: help("grad-accum"))
    var gradAccum: Int?

    @Option(name: .customLong("epochs"), parsing: .unconditional, help: help("epochs"))
    var epochs: Int?

    @Option(name: .customLong("max-steps"), parsing: .unconditional, help: help("max-steps"))
    var maxSteps: Int?

    @Option(name: .customLong("max-length"), parsing: .unconditional, help: help("max-length"))
    var maxLength: Int?

    @Option(name: .customLong("max-prompt-length"), parsing: .unconditional, help: help("max-prompt-length"))
    var maxPromptLength: Int?

    @Option(name: .customLong("truncation"), help: help("truncation"))
    var truncation: String?

    @Option(name: .customLong("shuffle"), help: help("shuffle"))
    var shuffle: Bool?

    @Option(name: .customLong("precision"), help: help("precision"))
    var precision: String?

    @Option(name: .customLong("save-dtype"), help: help("save-dtype"))
    var saveDtype: String?

    @Option(name: .customLong("seed"), parsing: .unconditional, help: help("seed"))
    var seed: Int?

    @Option(name: .customLong("max-skipped-steps"), parsing: .unconditional, help: help("max-skipped-steps"))
    var maxSkippedSteps: Int?

    @Option(name: .customLong("bucket-mb"), parsing: .unconditional, help: help("bucket-mb"))
    var bucketMb: Double?

    @Option(name: .customLong("allreduce-dtype"), help: help("allreduce-dtype"))
    var allreduceDtype: String?

    @Option(name: .customLong("zero"), parsing: .unconditional, help: help("zero"))
    var zero: Int?

    @Option(name: .customLong("check-every"), parsing: .unconditional, help: help("check-every"))
    var checkEvery: Int?

    @Option(name: .customLong("threads"), parsing: .unconditional, help: help("threads"))
    var threads: Int?

    @Option(name: .customLong("log-every"), parsing: .unconditional, help: help("log-every"))
    var logEvery: Int?

    @Option(name: .customLong("eval-every"), parsing: .unconditional, help: help("eval-every"))
    var evalEvery: Int?

    @Option(name: .customLong("save-every"), parsing: .unconditional, help: help("save-every"))
    var saveEvery: Int?

    @Option(name: .customLong("keep-checkpoints"), parsing: .unconditional, help: help("keep-checkpoints"))
    var keepCheckpoints: Int?

    @Flag(name: .customLong("allow-changed-model"), help: help("allow-changed-model"))
    var allowChangedModel = false

    @Flag(name: .customLong("allow-changed-config"), help: help("allow-changed-config"))
    var allowChangedConfig = false

    @Option(name: .customLong("skip-identical"), help: help("skip-identical"))
    var skipIdentical: Bool?

    @Flag(name: .customLong("reference-free"), help: help("reference-free"))
    var referenceFree = false

    @Flag(name: .customLong("average-logps"), help: help("average-logps"))
    var averageLogps = false

    @Flag(name: .customLong("precompute-ref"), help: help("precompute-ref"))
    var precomputeRef = false

    @Flag(name: .customLong("skip-invalid"), help: help("skip-invalid"))
    var skipInvalid = false

    @Option(name: .customLong("share-prompt"), help: help("share-prompt"))
    var sharePrompt: String?

    @Option(name: .customLong("gradient-checkpointing"), help: help("gradient-checkpointing"))
    var gradientCheckpointing: String?

    @Option(name: .customLong("shared-reference"), help: help("shared-reference"))
    var sharedReference: String?

    @Flag(name: .customLong("force"), help: help("force"))
    var force = false

    @Option(name: .customLong("chat-template"), help: help("chat-template"))
    var chatTemplate: String?

    @Option(name: .customLong("prompt-key"), help: help("prompt-key"))
    var promptKey: String?

    @Option(name: .customLong("chosen-key"), help: help("chosen-key"))
    var chosenKey: String?

    @Option(name: .customLong("rejected-key"), help: help("rejected-key"))
    var rejectedKey: String?

    @Option(name: .customLong("group-by-length"), help: help("group-by-length"))
    var groupByLength: String?

    @Option(name: .customLong("lora-r"), help: help("lora-r"))
    var loraR: Int?

    @Option(name: .customLong("lora-alpha"), parsing: .unconditional, help: help("lora-alpha"))
    var loraAlpha: Double?

    @Option(name: .customLong("lora-dropout"), parsing: .unconditional, help: help("lora-dropout"))
    var loraDropout: Double?

    @Option(name: .customLong("lora-targets"), help: help("lora-targets"))
    var loraTargets: String?

    @Option(name: .customLong("adapter"), help: help("adapter"))
    var adapter: String?

    @Option(name: .customLong("collective-timeout"), parsing: .unconditional, help: help("collective-timeout"))
    var collectiveTimeout: Double?

    /// The options given on the command line, as (name, value) for `TrainingParameters.apply`.
    private var givenOptions: [(String, String?)] {
        [
            ("model", model.map { "\($0)" }),
            ("ref-model", refModel.map { "\($0)" }),
            ("data", data.map { "\($0)" }),
            ("eval-data", evalData.map { "\($0)" }),
            ("out", out.map { "\($0)" }),
            ("resume", resume.map { "\($0)" }),
            ("loss", loss.map { "\($0)" }),
            ("beta", beta.map { "\($0)" }),
            ("label-smoothing", labelSmoothing.map { "\($0)" }),
            ("rpo-alpha", rpoAlpha.map { "\($0)" }),
            ("lr", lr.map { "\($0)" }),
            ("optimizer", optimizer.map { "\($0)" }),
            ("weight-decay", weightDecay.map { "\($0)" }),
            ("adam-beta1", adamBeta1.map { "\($0)" }),
            ("adam-beta2", adamBeta2.map { "\($0)" }),
            ("adam-eps", adamEps.map { "\($0)" }),
            ("schedule", schedule.map { "\($0)" }),
            ("warmup-steps", warmupSteps.map { "\($0)" }),
            ("warmup-ratio", warmupRatio.map { "\($0)" }),
            ("max-grad-norm", maxGradNorm.map { "\($0)" }),
            ("batch-pairs", batchPairs.map { "\($0)" }),
            ("grad-accum", gradAccum.map { "\($0)" }),
            ("epochs", epochs.map { "\($0)" }),
            ("max-steps", maxSteps.map { "\($0)" }),
            ("max-length", maxLength.map { "\($0)" }),
            ("max-prompt-length", maxPromptLength.map { "\($0)" }),
            ("truncation", truncation.map { "\($0)" }),
            ("shuffle", shuffle.map { "\($0)" }),
            ("precision", precision.map { "\($0)" }),
            ("save-dtype", saveDtype.map { "\($0)" }),
            ("seed", seed.map { "\($0)" }),
            ("max-skipped-steps", maxSkippedSteps.map { "\($0)" }),
            ("bucket-mb", bucketMb.map { "\($0)" }),
            ("allreduce-dtype", allreduceDtype.map { "\($0)" }),
            ("zero", zero.map { "\($0)" }),
            ("check-every", checkEvery.map { "\($0)" }),
            ("threads", threads.map { "\($0)" }),
            ("collective-timeout", collectiveTimeout.map { "\($0)" }),
            ("log-every", logEvery.map { "\($0)" }),
            ("eval-every", evalEvery.map { "\($0)" }),
            ("save-every", saveEvery.map { "\($0)" }),
            ("keep-checkpoints", keepCheckpoints.map { "\($0)" }),
            ("reference-free", referenceFree ? "true" : nil),
            ("average-logps", averageLogps ? "true" : nil),
            ("precompute-ref", precomputeRef ? "true" : nil),
            ("skip-invalid", skipInvalid ? "true" : nil),
            ("allow-changed-model", allowChangedModel ? "true" : nil),
            ("allow-changed-config", allowChangedConfig ? "true" : nil),
            ("skip-identical", skipIdentical.map { "\($0)" }),
            ("share-prompt", sharePrompt),
            ("gradient-checkpointing", gradientCheckpointing),
            ("shared-reference", sharedReference),
            ("force", force ? "true" : nil),
            ("chat-template", chatTemplate),
            ("prompt-key", promptKey),
            ("chosen-key", chosenKey),
            ("rejected-key", rejectedKey),
            ("group-by-length", groupByLength),
            ("lora-r", loraR.map { "\($0)" }),
            ("lora-alpha", loraAlpha.map { "\($0)" }),
            ("lora-dropout", loraDropout.map { "\($0)" }),
            ("lora-targets", loraTargets),
            ("adapter", adapter),
        ]
    }

    /// The parameters of this command line: defaults, then the --config file, then the flags given.
    func resolvedParameters() throws -> TrainingParameters {
        var parameters = TrainingParameters()
        if let config { try TrainingConfigFile.apply(URL(fileURLWithPath: config), to: &parameters) }
        for case let (name, value?) in givenOptions { try parameters.apply(name, value) }
        return parameters
    }

    func run() throws {
        let parameters = try resolvedParameters()
        try parameters.validate()
        try ShutdownSignal.install()
        let stopped = try World.run { communicator in
            CollectiveWatchdog.shared.start(timeout: parameters.collectiveTimeout, communicator: communicator)
            defer { CollectiveWatchdog.shared.stop() }
            let trainer = DPOTrainer(parameters: parameters, communicator: communicator)
            guard communicator.isPrimary else { return try trainer.run().stoppedBySignal }
            let summary = try Self.runReporting(trainer, parameters: parameters)
            return summary.stoppedBySignal
        }
        // A stop on request (signal) is neither success nor failure: a requeue script resumes on this code.
        if stopped { throw ExitCode(TrainCommand.stoppedExitCode) }
    }

    /// EX_TEMPFAIL: stopped on request before the end (checkpoint written, or nothing yet); run again with --resume auto.
    static let stoppedExitCode: Int32 = 75

    /// Rank 0: the run with its start-up summary, progress and messages on stderr, then the plots and the outcome.
    private static func runReporting(_ trainer: DPOTrainer, parameters: TrainingParameters) throws -> TrainingSummary {
        var errorStream = FileHandleOutputStream(.standardError)
        let reporter = ProgressReporter(output: FileHandleOutputStream(.standardError), mode: .detect(fileDescriptor: STDERR_FILENO))
        let summary = try trainer.run { event in
            switch event {
            case .message(let text): reporter.message(text)
            case .startup(let facts): reporter.message(ProgressStartupSummary.format(facts).trimmingCharacters(in: .newlines))
            case .progress(let snapshot):
                // A terminal redraws the bar every step; a log file gets a line every --log-every steps.
                if reporter.mode == .interactive || snapshot.step % parameters.logEvery == 0 || snapshot.step == snapshot.totalSteps {
                    reporter.update(snapshot)
                }
            }
            return .more
        }
        reporter.finish()
        // The plots are a convenience: a failure to draw them is said, not fatal.
        if summary.savedDirectory != nil { do {
            let plots = try MetricsPlot.writeTrainingPlots(outputDirectory: URL(fileURLWithPath: parameters.outputDirectory))
            print("plots: " + plots.map(\.path).joined(separator: ", "), to: &errorStream)
        } catch { print("warning: no plots written: \(error)", to: &errorStream) } }
        let saved = summary.savedDirectory?.path ?? parameters.outputDirectory
        if summary.stoppedBySignal && summary.savedDirectory == nil {
            print("stopped on request before the first step; nothing was written", to: &errorStream)
        } else if summary.stoppedBySignal {
            print("stopped at step \(summary.finalStep)/\(summary.totalSteps) on request; checkpoint \(saved)", to: &errorStream)
            print("continue with: dpo train ... --resume auto", to: &errorStream)
        } else {
            print("trained to step \(summary.finalStep) (\(summary.skippedSteps) skipped); model in \(saved); "
                + "peak RSS \(ProgressStartupSummary.bytes(ProcessMemory.peakResidentBytes()))", to: &errorStream)
        }
        return summary
    }
}
