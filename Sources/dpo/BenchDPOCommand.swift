import ArgumentParser
import DPOTools
import Distributed
import Foundation
import Kernels
import Llama
import Training

/// `dpo bench dpo`: the full DPO training step (policy forward+backward, reference forward,
/// optimizer) on a preset with synthetic rows shaped like the PyTorch anchor's; rank 0 prints
/// one JSON line with the figures of all ranks.
struct BenchDPOCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dpo",
        abstract: "Time the DPO training step; print tokens/s, pairs/s, GFLOP/s, the fraction of the sgemm peak, peak RSS and the time per phase as one JSON line.",
        discussion: """
            GFLOP/s follow the PyTorch anchor (torch_dpo_step.py): N = matmul parameters (the tied head once), \
            6N per trained token + 2N per reference token, plus causal attention 12*L*T*d/2 (trained) and \
            4*L*T*d/2 (reference) per token. `gflops` counts the plain step's work (comparable with the anchor's \
            figure whatever the switches); `executed_gflops` counts what ran (shared prompts once, no reference \
            forward with --precompute-ref) and gives `fraction_of_sgemm_peak` against this machine's \
            single-core sgemm (measured here) x threads x ranks. On a machine shared with other work the \
            `*_cpu_s` figures (per process CPU-second, all ranks) are the ones that do not drop with the load. \
            The single-core sgemm is measured by one rank at a time (the others wait without spinning), best of 4 \
            runs, and the best rank's figure is used by all. `step_sys_s` and `step_minor_faults` are the median \
            system CPU seconds and minor page faults of a step (getrusage), summed over ranks.

            Start-up and saving: with --model DIR the model is loaded from DIR and `load_s` (`load_cpu_s`, \
            `load_sys_s`, `load_minor_faults`) times it from nothing to a step ready to run: config and weights \
            read, policy and reference built, optimizer and step made (page cache warm). With --io a preset is \
            first written (untimed) as a bf16 model directory under --io-dir and loaded back the same way, and \
            after the timed steps rank 0 saves a checkpoint as `dpo train` does (model as fp32, optimizer state, \
            tokenizer, trainer state, manifest; every file fsync'd): `save_s`, `save_cpu_s`, `save_bytes` (all \
            its files). `dd_s` is the time to write the same number of files of the same sizes in the same place \
            with 8 MiB sequential writes and one fsync per file (what `dd bs=8M conv=fsync` does per file), and \
            `save_vs_dd` = save_s / dd_s. --io is opt-in because saving a 135M-parameter model writes 2.2 GB \
            twice (a minute or more on a slow disk).

            fp16 against fp32: with --compare-precision (one rank) an fp32 and an fp16 step are built from the \
            same weights in one process and take turns on the same rows for --steps rounds, fp32 first in even \
            rounds and fp16 first in odd ones (ABBA), so the host's drift falls on both alike. The line (bench \
            "precision") gives `fp16_over_fp32_cpu` (total CPU seconds of the fp16 steps over the fp32 steps'), \
            the wall-time ratio, the median of the rounds' ratios, the rounds fp16 won, each round's figures \
            and each precision's fraction of the sgemm peak by CPU time.
            """)

    @Option(help: "Model preset: \(LlamaPreset.allCases.map(\.rawValue).joined(separator: "|")).")
    var preset: String = "minimind"
    @Option(help: ArgumentHelp("A Hugging Face model directory (config.json + safetensors) to bench instead of --preset; its load is timed (load_s).", valueName: "dir"))
    var model: String?
    @Flag(help: "Also time a checkpoint save (save_s, save_bytes) against plain writes of the same bytes (dd_s), and with a preset its load (load_s).")
    var io = false
    @Option(help: ArgumentHelp("Where --io writes (a fresh subdirectory, removed afterwards).", valueName: "dir"))
    var ioDir: String = FileManager.default.temporaryDirectory.path
    @Flag(help: "Keep what --io wrote (the model written from a preset, the checkpoint) in its subdirectory of --io-dir.")
    var keepIoFiles = false
    @Option(help: "Preference pairs per rank per step.")
    var batchPairs: Int = 4
    @Option(help: "Input tokens per row (the anchor's --seq).")
    var seq: Int = 256
    @Option(help: "Threads per rank (default: this host's cores / ranks on it).")
    var threads: Int?
    @Option(help: "Working precision.")
    var precision: Precision = .fp32
    @Flag(help: "Run each pair's prompt once for chosen and rejected.")
    var sharePrompt = false
    @Flag(help: "Reference log-probs computed before training (no reference forward in the step).")
    var precomputeRef = false
    @Option(help: "Keep only each layer's input in the policy forward and recompute the layer in backward (true|false).")
    var gradientCheckpointing = false
    @Option(help: "Fraction of each row that is prompt (unlabelled), as the anchor's quarter.")
    var promptFraction: Double = 0.25
    @Option(help: "LoRA rank on all seven projections, the base as reference (0 = full fine-tuning).")
    var loraR: Int = 0
    @Option(help: "Timed steps (median reported), after one warm-up step.")
    var steps: Int = 3
    @Option(help: "Gradients on the wire between ranks: fp32 or fp16 (default: fp16 with --precision fp16, else fp32).")
    var allreduceDtype: String?
    @Option(help: "Largest gradient bucket in MiB on the wire (default: the trainer's, 4 with --zero 2, else 25).")
    var bucketMb: Double?
    @Option(help: "ZeRO stage: 0 = whole optimizer state on every rank, 1 = sharded over ranks (reduce-scatter + all-gather), 2 = the gradients sharded too.")
    var zero: Int = 0
    @Option(help: "Ranks of a host map one reference copy in shared memory (true|false), as the trainer's --shared-reference.")
    var sharedReference = false
    @Flag(help: "Time fp32 and fp16 steps in turn in one process on the same weights and rows, --steps rounds in ABBA order (--precision is not used; one rank).")
    var comparePrecision = false

    func validate() throws {
        guard LlamaPreset(rawValue: preset) != nil else {
            throw ValidationError("--preset \(preset): expected one of \(LlamaPreset.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard batchPairs > 0, seq >= 8, steps > 0, (threads ?? 1) > 0 else {
            throw ValidationError("--batch-pairs, --steps and --threads must be positive and --seq at least 8")
        }
        guard loraR >= 0 else { throw ValidationError("--lora-r must be >= 0 (0 = full fine-tuning), got \(loraR)") }
        guard promptFraction >= 0, promptFraction < 1 else { throw ValidationError("--prompt-fraction must be in [0, 1)") }
        if let allreduceDtype, GradientReducer.WireType(rawValue: allreduceDtype) == nil {
            throw ValidationError("--allreduce-dtype \(allreduceDtype): expected fp32 or fp16")
        }
        if let bucketMb, !(bucketMb > 0 && bucketMb.isFinite) {
            throw ValidationError("--bucket-mb must be a positive number, got \(bucketMb)")
        }
        guard (0...2).contains(zero) else { throw ValidationError("--zero must be 0, 1 or 2, got \(zero)") }
        if comparePrecision, io || sharedReference {
            throw ValidationError("--compare-precision times the steps only: drop --io and --shared-reference")
        }
        if io, zero != 0 || loraR > 0 {
            throw ValidationError("--io times the checkpoint of full fine-tuning with --zero 0; drop --zero 1|2 / --lora-r")
        }
    }

    func run() throws {
        try World.run { communicator in
            if comparePrecision, communicator.size > 1 {
                throw ValidationError("--compare-precision runs in one process; start it without mpirun or launch/local.sh (got \(communicator.size) ranks)")
            }
            let core = BLAS.ensureBestCore()
            let (sgemm, sgemmPerCPU) = DPOStepBenchmark.agreedSgemmPeak(communicator: communicator)
            BLAS.threads = ThreadShare.threads(for: communicator, override: threads)
            if comparePrecision {
                return try runPrecisionComparison(sgemm: sgemm, sgemmPerCPU: sgemmPerCPU, core: core)
            }
            let options = benchOptions()
            let result = try DPOStepBenchmark.run(options, communicator: communicator)
            let totalThreads = Int(communicator.sum([Double(BLAS.threads)])[0])
            guard communicator.isPrimary else { return }
            let seconds = result.medianStepSeconds, phases = result.phases
            let load = loadAverage()
            func f(_ value: Double, _ digits: Int = 4) -> String { number(value, digits) }
            let fields: [(String, String)] = [
                ("bench", "\"dpo\""), ("model", json(model ?? preset)), ("preset", model == nil ? json(preset) : "null"), ("precision", "\"\(precision.rawValue)\""),
                ("ranks", "\(communicator.size)"), ("threads_per_rank", "\(BLAS.threads)"),
                ("allreduce_dtype", "\"\(allreduceDtype ?? (precision == .fp16 ? "fp16" : "fp32"))\""), ("bucket_mb", f(options.resolvedBucketMegabytes, 2)), ("zero", "\(zero)"),
                ("batch_pairs_per_rank", "\(batchPairs)"), ("seq", "\(seq)"), ("prompt_fraction", f(promptFraction, 3)),
                ("share_prompt", "\(sharePrompt)"), ("lora_r", "\(loraR)"), ("precompute_ref", "\(precomputeRef)"),
                ("gradient_checkpointing", "\(gradientCheckpointing)"),
                ("tokens_per_step", "\(result.tokensPerStep)"), ("pairs_per_step", "\(result.pairsPerStep)"),
                ("step_s", f(seconds)), ("tokens_per_s", f(result.tokensPerSecond, 1)), ("pairs_per_s", f(result.pairsPerSecond, 3)),
                ("step_cpu_s", f(result.medianStepCPUSeconds)),
                ("tokens_per_cpu_s", f(Double(result.tokensPerStep) / result.medianStepCPUSeconds, 1)),
                ("gflops", f(result.plainStepFLOPs / seconds / 1e9, 1)),
                ("gflops_per_cpu_s", f(result.plainStepFLOPs / result.medianStepCPUSeconds / 1e9, 1)),
                ("executed_gflops", f(result.executedStepFLOPs / seconds / 1e9, 1)),
                ("sgemm_1core_gflops", f(sgemm, 1)),
                ("fraction_of_sgemm_peak", f(result.executedStepFLOPs / seconds / 1e9 / (Double(totalThreads) * sgemm), 3)),
                ("sgemm_1core_gflops_per_cpu_s", f(sgemmPerCPU, 1)),
                ("fraction_of_sgemm_peak_by_cpu_time", f(result.executedStepFLOPs / result.medianStepCPUSeconds / 1e9 / sgemmPerCPU, 3)),
                ("step_sys_s", f(result.medianStepSystemSeconds)), ("step_minor_faults", f(result.medianStepMinorFaults, 0)),
                ("shared_reference", "\(sharedReference)"),
                ("peak_rss_mb", f(result.peakResidentMB, 1)), ("step_peak_rss_mb", f(result.stepPeakResidentMB, 1)),
                ("peak_pss_mb", f(result.peakPSSMB, 1)), ("step_peak_pss_mb", f(result.stepPeakPSSMB, 1)),
                ("step_peak_pss_sample_rss_mb", f(result.stepPeakPSSSampleRSSMB, 1)), ("shared_mb", f(result.sharedMB, 1)),
                ("setup_rss_mb", f(result.setupRSSMB, 1)), ("setup_pss_mb", f(result.setupPSSMB, 1)),
                ("phases_s", "{\"data\": \(f(phases.data)), \"reference_forward\": \(f(phases.referenceForward)), "
                    + "\"policy_forward\": \(f(phases.policyForward)), \"backward\": \(f(phases.backward)), "
                    + "\"allreduce_wait\": \(f(phases.allReduceWait)), \"optimizer\": \(f(phases.optimizer)), "
                    + "\"weight_gather\": \(f(phases.weightGather, 6))}"),  // a small model's gather takes microseconds
                ("timed_steps", "\(result.timedSteps)"), ("blas_core", "\"\(core)\""), ("load_average", load),
            ] + ioFields(result)
            print("{" + fields.map { "\"\($0.0)\": \($0.1)" }.joined(separator: ", ") + "}")
        }
    }

    /// The benchmark's options from the command line (threads: BLAS's, set before).
    func benchOptions() -> DPOStepBenchmark.Options {
        var options = DPOStepBenchmark.Options(preset: LlamaPreset(rawValue: preset)!)
        options.precision = precision
        options.batchPairs = batchPairs
        options.sequenceLength = seq
        options.promptFraction = promptFraction
        options.sharePrompt = sharePrompt
        options.precomputeReference = precomputeRef
        options.gradientCheckpointing = gradientCheckpointing
        options.timedSteps = steps
        options.loraRank = loraR
        options.threads = BLAS.threads
        options.allreduceDType = allreduceDtype.flatMap(GradientReducer.WireType.init(rawValue:))
        options.bucketMegabytes = bucketMb
        options.zeroStage = zero
        options.modelDirectory = model.map { URL(fileURLWithPath: $0) }
        options.ioDirectory = io ? URL(fileURLWithPath: ioDir) : nil
        options.keepIOFiles = keepIoFiles
        options.sharedReference = sharedReference
        return options
    }

    /// load_* (with a model directory), save_* and dd_s (with --io); null when not measured.
    private func ioFields(_ result: DPOStepBenchmark.Result) -> [(String, String)] {
        let load = result.load, save = result.save
        func optional(_ value: Double?, _ digits: Int = 4) -> String { value.map { number($0, digits) } ?? "null" }
        return [
            ("load_s", optional(load?.seconds)), ("load_cpu_s", optional(load?.usage.cpuSeconds)),
            ("load_sys_s", optional(load?.usage.systemSeconds)), ("load_minor_faults", load.map { "\($0.usage.minorFaults)" } ?? "null"),
            ("save_s", optional(save?.seconds)), ("save_cpu_s", optional(save?.usage.cpuSeconds)),
            ("save_bytes", save.map { "\($0.bytes)" } ?? "null"), ("dd_s", optional(save?.plainWriteSeconds)),
            ("save_vs_dd", optional(save.map { $0.seconds / $0.plainWriteSeconds }, 3)),
        ]
    }

    /// A JSON number with `digits` decimals, null when not finite.
    func number(_ value: Double, _ digits: Int = 4) -> String { value.isFinite ? String(format: "%.\(digits)f", value) : "null" }

    /// This host's 1-minute load average as a JSON value (null where /proc/loadavg is missing).
    func loadAverage() -> String {
        (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").first.map(String.init) ?? "null"
    }

    /// A JSON string literal.
    func json(_ text: String) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .withoutEscapingSlashes
        return String(decoding: (try? encoder.encode(text)) ?? Data("\"\"".utf8), as: UTF8.self)
    }
}
