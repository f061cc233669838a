import Distributed
import Foundation
import Llama
import Preference
import Tokenization

// The option table of `dpo train`: the single source of its flag names, defaults and help
// texts (`--help`, `--config FILE` keys), and how each string value is applied to
// `TrainingParameters`. The LoRA options live in TrainingParameters+LoRA.swift.

extension TrainingParameters {
    /// One `dpo train` option: its flag name (also its `--config` key), the value it takes,
    /// its default as shown in `--help`, what it does, and how a string value is applied.
    public struct Option: Sendable {
        public let name: String
        public let valueName: String
        public let defaultValue: String
        public let help: String
        let apply: @Sendable (inout TrainingParameters, String) throws -> Void

        /// `help` followed by the default, for `--help`.
        public var helpWithDefault: String { "\(help) (default: \(defaultValue))" }
    }

    /// The help text of option `name` (for the CLI's `@Option(help:)`).
    public static func help(_ name: String) -> String {
        options.first { $0.name == name }?.helpWithDefault ?? ""
    }

    /// Sets option `name` from its string form; `source` names where it came from in errors.
    public mutating func apply(_ name: String, _ value: String, source: String = "command line") throws {
        let key = name.hasPrefix("--") ? String(name.dropFirst(2)) : name
        let normalized = key.replacingOccurrences(of: "_", with: "-")
        guard let option = Self.options.first(where: { $0.name == normalized }) else {
            throw TrainingError.invalidOption("\(source): unknown option '\(name)' (see dpo train --help)")
        }
        do { try option.apply(&self, value) } catch let error as TrainingError {
            throw error
        } catch {
            throw TrainingError.invalidOption("\(source): --\(option.name) \(value): \(error)")
        }
    }

    // MARK: Value parsers (shared by every option table: the core one here, the LoRA one)

    static func int(_ name: String, _ value: String) throws -> Int {
        guard let v = Int(value.trimmingCharacters(in: .whitespaces)) else {
            throw TrainingError.invalidOption("--\(name) takes an integer, got '\(value)'")
        }
        return v
    }

    static func double(_ name: String, _ value: String) throws -> Double {
        guard let v = Double(value.trimmingCharacters(in: .whitespaces)), v.isFinite else {
            throw TrainingError.invalidOption("--\(name) takes a number, got '\(value)'")
        }
        return v
    }

    static func bool(_ name: String, _ value: String) throws -> Bool {
        switch value.lowercased().trimmingCharacters(in: .whitespaces) {
        case "true", "yes", "1", "on", "": return true
        case "false", "no", "0", "off": return false
        default: throw TrainingError.invalidOption("--\(name) takes true or false, got '\(value)'")
        }
    }

    static func choice<T: RawRepresentable & CaseIterable>(_ name: String, _ value: String, _: T.Type) throws -> T
    where T.RawValue == String {
        guard let v = T(rawValue: value) else {
            let all = T.allCases.map(\.rawValue).joined(separator: ", ")
            throw TrainingError.invalidOption("--\(name) takes one of \(all), got '\(value)'")
        }
        return v
    }

    /// `--chat-template`: nil for auto, else a built-in name, none, or a Jinja file.
    private static func chatTemplateChoice(_ value: String) throws -> ChatTemplate? {
        guard value != "auto" else { return nil }
        do { return try ChatTemplate.named(value) } catch { throw TrainingError.invalidOption("\(error)") }
    }

    private static func choices<T: RawRepresentable & CaseIterable>(_: T.Type) -> String where T.RawValue == String {
        T.allCases.map(\.rawValue).joined(separator: "|")
    }

    /// Every option of `dpo train`, in `--help` order.
    public static let options: [Option] = coreOptions + loraOptions

    private static let coreOptions: [Option] = [
        Option(name: "model", valueName: "DIR", defaultValue: "required",
               help: "Policy model directory (config.json, model.safetensors, tokenizer.json); also the reference unless --ref-model")
            { $0.modelDirectory = $1 },
        Option(name: "ref-model", valueName: "DIR", defaultValue: "the --model directory",
               help: "Reference model directory; its architecture must equal the policy's") { $0.referenceModelDirectory = $1 },
        Option(name: "data", valueName: "FILE", defaultValue: "required", help: "Training preference pairs (JSONL or JSON array)")
            { $0.dataFile = $1 },
        Option(name: "eval-data", valueName: "FILE", defaultValue: "none", help: "Evaluation preference pairs") { $0.evalDataFile = $1 },
        Option(name: "out", valueName: "DIR", defaultValue: "required",
               help: "Output directory: checkpoint-<step>/, final/, train_config.json, metrics.jsonl, reference cache")
            { $0.outputDirectory = $1 },
        Option(name: "resume", valueName: "CHECKPOINT_DIR|auto", defaultValue: "none",
               help: "Continue from a checkpoint; auto = the newest complete one in --out (a fresh start if there is none)")
            { $0.resume = $1 },
        Option(name: "loss", valueName: choices(PreferenceLossKind.self), defaultValue: "sigmoid",
               help: "Preference loss (TRL's loss_type names); sft = the chosen completions' NLL only, and its data is still "
                   + "preference records (prompt, chosen, rejected; the rejected is not read, so it may repeat the chosen)")
            { $0.loss.kind = try choice("loss", $1, PreferenceLossKind.self) },
        Option(name: "beta", valueName: "B", defaultValue: "0.1", help: "Implicit reward temperature, > 0")
            { $0.loss.beta = try double("beta", $1) },
        Option(name: "label-smoothing", valueName: "E", defaultValue: "0",
               help: "Label smoothing in [0, 0.5) for sigmoid (cDPO), robust, exo_pair (which needs > 0)")
            { $0.loss.labelSmoothing = try double("label-smoothing", $1) },
        Option(name: "rpo-alpha", valueName: "A", defaultValue: "0",
               help: "Add A x the chosen NLL (averaged over the global batch's chosen tokens)")
            { $0.loss.rpoAlpha = try double("rpo-alpha", $1) },
        Option(name: "reference-free", valueName: "true|false", defaultValue: "false",
               help: "Use reference log-probs of 0 (no reference model)") { $0.loss.referenceFree = try bool("reference-free", $1) },
        Option(name: "average-logps", valueName: "true|false", defaultValue: "false",
               help: "Length-normalise sequence log-probs (as MiniMind)") { $0.loss.averageLogps = try bool("average-logps", $1) },
        Option(name: "lr", valueName: "LR", defaultValue: "1e-6", help: "Peak learning rate") { $0.learningRate = try double("lr", $1) },
        Option(name: "optimizer", valueName: choices(OptimizerKind.self), defaultValue: "adamw", help: "Optimizer")
            { $0.optimizer.kind = try choice("optimizer", $1, OptimizerKind.self) },
        Option(name: "weight-decay", valueName: "W", defaultValue: "0", help: "Decoupled weight decay (never on norm weights)")
            { $0.optimizer.weightDecay = try double("weight-decay", $1) },
        Option(name: "adam-beta1", valueName: "B1", defaultValue: "0.9", help: "AdamW beta1")
            { $0.optimizer.beta1 = try double("adam-beta1", $1) },
        Option(name: "adam-beta2", valueName: "B2", defaultValue: "0.999", help: "AdamW beta2")
            { $0.optimizer.beta2 = try double("adam-beta2", $1) },
        Option(name: "adam-eps", valueName: "EPS", defaultValue: "1e-8", help: "AdamW epsilon")
            { $0.optimizer.epsilon = try double("adam-eps", $1) },
        Option(name: "schedule", valueName: choices(ScheduleKind.self), defaultValue: "linear",
               help: "Learning-rate schedule after warmup (transformers' get_*_schedule_with_warmup)")
            { $0.schedule = try choice("schedule", $1, ScheduleKind.self) },
        Option(name: "warmup-steps", valueName: "N", defaultValue: "0", help: "Linear warmup steps (wins over --warmup-ratio)")
            { $0.warmupSteps = try int("warmup-steps", $1) },
        Option(name: "warmup-ratio", valueName: "R", defaultValue: "0", help: "Warmup as a fraction of the total steps (rounded up)")
            { $0.warmupRatio = try double("warmup-ratio", $1) },
        Option(name: "max-grad-norm", valueName: "N", defaultValue: "1.0", help: "Clip the global gradient norm (0 = no clipping)")
            { $0.maxGradNorm = try double("max-grad-norm", $1) },
        Option(name: "batch-pairs", valueName: "N", defaultValue: "2", help: "Pairs per rank per micro-step")
            { $0.batchPairs = try int("batch-pairs", $1) },
        Option(name: "grad-accum", valueName: "N", defaultValue: "1",
               help: "Micro-steps per optimizer step (global batch = batch-pairs x grad-accum x ranks)")
            { $0.gradAccum = try int("grad-accum", $1) },
        Option(name: "epochs", valueName: "N", defaultValue: "1", help: "Passes over the training data")
            { $0.epochs = try int("epochs", $1) },
        Option(name: "max-steps", valueName: "N", defaultValue: "0", help: "Optimizer steps (0 = what --epochs gives)")
            { $0.maxSteps = try int("max-steps", $1) },
        Option(name: "max-length", valueName: "N", defaultValue: "1024", help: "Longest prompt+completion in tokens")
            { $0.maxLength = try int("max-length", $1) },
        Option(name: "max-prompt-length", valueName: "N", defaultValue: "512", help: "Longest prompt in tokens")
            { $0.maxPromptLength = try int("max-prompt-length", $1) },
        Option(name: "truncation", valueName: choices(TruncationMode.self), defaultValue: "keep_end",
               help: "Which end of a too-long prompt is kept") { $0.truncation = try choice("truncation", $1, TruncationMode.self) },
        Option(name: "shuffle", valueName: "true|false", defaultValue: "true", help: "Shuffle the pairs every epoch (seeded)")
            { $0.shuffle = try bool("shuffle", $1) },
        Option(name: "skip-invalid", valueName: "true|false", defaultValue: "false",
               help: "Skip unreadable records of the data files (counted and reported) instead of stopping")
            { $0.skipInvalid = try bool("skip-invalid", $1) },
        Option(name: "chat-template", valueName: choices(ChatTemplate.self) + "|auto|FILE", defaultValue: "auto",
               help: "Chat template for conversational data (auto = the model's chat_template.jinja, else tokenizer_config.json; a name or .jinja file replaces it)")
            { $0.chatTemplate = try chatTemplateChoice($1) },
        Option(name: "prompt-key", valueName: "KEY", defaultValue: "prompt", help: "Key of the prompt in the data files")
            { $0.promptKey = $1 },
        Option(name: "chosen-key", valueName: "KEY", defaultValue: "chosen", help: "Key of the chosen completion")
            { $0.chosenKey = $1 },
        Option(name: "rejected-key", valueName: "KEY", defaultValue: "rejected", help: "Key of the rejected completion")
            { $0.rejectedKey = $1 },
        Option(name: "group-by-length", valueName: "true|false", defaultValue: "false",
               help: "Batch pairs of similar length together (less padding; order stays seeded)")
            { $0.groupByLength = try bool("group-by-length", $1) },
        Option(name: "precision", valueName: choices(Precision.self), defaultValue: "fp32",
               help: "fp16 = Float16 working weights, activations and reference, fp32 master weights, loss scaling")
            { $0.precision = try choice("precision", $1, Precision.self) },
        Option(name: "save-dtype", valueName: choices(WeightDType.self), defaultValue: "fp32", help: "dtype of saved model.safetensors")
            { $0.saveDType = try choice("save-dtype", $1, WeightDType.self) },
        Option(name: "seed", valueName: "N", defaultValue: "42", help: "Seed of the data order") { $0.seed = try int("seed", $1) },
        Option(name: "precompute-ref", valueName: "true|false", defaultValue: "false",
               help: "Compute the reference log-probs once (cached in --out) and free the reference model")
            { $0.precomputeReference = try bool("precompute-ref", $1) },
        Option(name: "share-prompt", valueName: "true|false", defaultValue: "true",
               help: "Run each pair's shared prompt once for chosen and rejected (exact; false = plain concatenated rows)")
            { $0.sharePrompt = try bool("share-prompt", $1) },
        Option(name: "gradient-checkpointing", valueName: "true|false", defaultValue: "false",
               help: "Keep only each layer's input in the policy forward and recompute the layer in backward "
                   + "(exact: the same gradients; much less activation memory for about one more policy forward of time)")
            { $0.gradientCheckpointing = try bool("gradient-checkpointing", $1) },
        Option(name: "shared-reference", valueName: "true|false", defaultValue: "true",
               help: "Ranks on one host share one read-only copy of the reference model (in nameless shared memory: nothing is left behind); "
                   + "not used with --precompute-ref")
            { $0.sharedReference = try bool("shared-reference", $1) },
        Option(name: "force", valueName: "true|false", defaultValue: "false",
               help: "Start even when the fit check estimates that a rank's peak memory exceeds the memory available to it")
            { $0.force = try bool("force", $1) },
        Option(name: "max-skipped-steps", valueName: "N", defaultValue: "10",
               help: "Stop after N non-finite (skipped) steps in a row") { $0.maxSkippedSteps = try int("max-skipped-steps", $1) },
        Option(name: "bucket-mb", valueName: "MB", defaultValue: "the --zero stage's: 4 with --zero 2, else 25",
               help: "Gradient all-reduce bucket size in MiB (with --zero 2 the gradient pages held and the fp16 staging scale with it)")
            { $0.bucketMegabytes = try double("bucket-mb", $1) },
        Option(name: "allreduce-dtype", valueName: choices(GradientReducer.WireType.self), defaultValue: "the --precision (fp16 with fp16, else fp32)",
               help: "Gradient element type on the wire between ranks (fp16 halves the bytes; pre-divided by the rank count)")
            { $0.allreduceDType = try choice("allreduce-dtype", $1, GradientReducer.WireType.self) },
        Option(name: "zero", valueName: "0|1|2", defaultValue: "0",
               help: "ZeRO stage: 1 = each rank keeps only its shard of the fp32 master weights and AdamW moments (reduce-scatter + all-gather; less memory on 2+ ranks); 2 = its shard of the fp32 gradients too (reduced every micro-batch; less memory again)")
            { $0.zero = try int("zero", $1) },
        Option(name: "check-every", valueName: "N", defaultValue: "100",
               help: "Compare a checksum of the weights across ranks every N steps (0 = only at saves and the end)")
            { $0.checkEvery = try int("check-every", $1) },
        Option(name: "threads", valueName: "N", defaultValue: "the host's cores / ranks on it",
               help: "BLAS threads per rank") { $0.threads = try int("threads", $1) },
        Option(name: "collective-timeout", valueName: "SECONDS", defaultValue: "\(Int(CollectiveWatchdog.defaultTimeout))",
               help: "Seconds one collective (all-reduce, barrier) may wait for the other ranks before the job ends with exit status 76, naming the step and peers; waits include rank 0's checkpoint saves; 0 = no limit")
            { $0.collectiveTimeout = try double("collective-timeout", $1) },
        Option(name: "log-every", valueName: "N", defaultValue: "10", help: "Log metrics every N steps (and the last)")
            { $0.logEvery = try int("log-every", $1) },
        Option(name: "eval-every", valueName: "N", defaultValue: "0", help: "Evaluate every N steps (0 = only at the end)")
            { $0.evalEvery = try int("eval-every", $1) },
        Option(name: "save-every", valueName: "N", defaultValue: "0", help: "Write checkpoint-<step>/ every N steps (0 = only final/)")
            { $0.saveEvery = try int("save-every", $1) },
        Option(name: "keep-checkpoints", valueName: "K", defaultValue: "3",
               help: "Keep the newest K checkpoint-<step>/ (0 = all); final/ is never removed")
            { $0.keepCheckpoints = try int("keep-checkpoints", $1) },
        Option(name: "allow-changed-model", valueName: "true|false", defaultValue: "false",
               help: "Resume even if --model/--ref-model hold other weights than the checkpoint started from")
            { $0.allowChangedModel = try bool("allow-changed-model", $1) },
        Option(name: "allow-changed-config", valueName: "true|false", defaultValue: "false",
               help: "Resume even if --loss, --beta, --precision, --seed or similar differ from the checkpoint's")
            { $0.allowChangedConfig = try bool("allow-changed-config", $1) },
        Option(name: "skip-identical", valueName: "true|false", defaultValue: "true",
               help: "Drop training pairs whose chosen equals the rejected (no preference signal; counted and reported)")
            { $0.skipIdentical = try bool("skip-identical", $1) },
    ]
}
