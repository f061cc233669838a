import Distributed
import Foundation
import Llama
import Preference
import Tokenization

/// Everything `dpo train` can be told, with its documented default.
///
/// The option table `TrainingParameters.options` is the single source of the flag names,
/// defaults and help texts: the CLI shows its help from it, `--config FILE` keys are its
/// names, and `train_config.json` is written from the resolved struct.
public struct TrainingParameters: Codable, Equatable, Sendable {
    // MARK: Inputs and outputs
    /// Policy model directory (`--model`); also the reference unless `--ref-model` is given.
    public var modelDirectory: String = ""
    /// Reference model directory (`--ref-model`), default: the policy's initial weights.
    public var referenceModelDirectory: String?
    /// Training preference file (`--data`).
    public var dataFile: String = ""
    /// Evaluation preference file (`--eval-data`), default none.
    public var evalDataFile: String?
    /// Output directory (`--out`).
    public var outputDirectory: String = ""
    /// `--resume CHECKPOINT_DIR|auto`, default none (a fresh run; refuses an OUT that already has checkpoints).
    public var resume: String?

    // MARK: Objective
    public var loss = PreferenceLossOptions()

    // MARK: Optimisation
    /// Peak learning rate (`--lr`), default 1e-6 (TRL's DPOConfig).
    public var learningRate: Double = 1e-6
    public var optimizer = OptimizerOptions()
    /// `--schedule`, default linear (the Hugging Face Trainer's).
    public var schedule: ScheduleKind = .linear
    /// `--warmup-steps` (wins when > 0) or `--warmup-ratio` of the total steps, default 0.
    public var warmupSteps: Int = 0
    public var warmupRatio: Double = 0
    /// Clip the global gradient norm to this (`--max-grad-norm`, 0 = no clipping), default 1.0.
    public var maxGradNorm: Double = 1.0

    // MARK: Batching and length
    /// Pairs per rank per micro-step (`--batch-pairs`), default 2.
    public var batchPairs: Int = 2
    /// Micro-steps per optimizer step (`--grad-accum`), default 1.
    public var gradAccum: Int = 1
    /// Passes over the data (`--epochs`), default 1; `--max-steps` > 0 overrides.
    public var epochs: Int = 1
    /// Optimizer steps to run (`--max-steps`), default 0 = as many as `--epochs` gives.
    public var maxSteps: Int = 0
    /// Longest prompt+completion in tokens (`--max-length`), default 1024 (TRL's).
    public var maxLength: Int = 1024
    /// Longest prompt in tokens (`--max-prompt-length`), default 512.
    public var maxPromptLength: Int = 512
    /// Which end of a long prompt survives (`--truncation keep_end|keep_start`), default keep_end.
    public var truncation: TruncationMode = .keepEnd
    /// Shuffle the pairs each epoch (`--shuffle true|false`), default true.
    public var shuffle: Bool = true
    /// Skip unreadable records of the data files instead of stopping (`--skip-invalid`), default off.
    public var skipInvalid: Bool = false
    /// Chat template for conversational data (`--chat-template chatml|llama3|none`);
    /// nil (default) = the model's own (`chat_template.jinja`, else `tokenizer_config.json`).
    public var chatTemplate: ChatTemplate?
    /// Key names of the data files (`--prompt-key`, `--chosen-key`, `--rejected-key`), default TRL's.
    public var promptKey: String = "prompt"
    public var chosenKey: String = "chosen"
    public var rejectedKey: String = "rejected"
    /// Batch pairs of similar length together to cut padding (`--group-by-length`), default off.
    public var groupByLength: Bool = false

    // MARK: Precision and runtime
    /// `--precision fp32|fp16`, default fp32.
    public var precision: Precision = .fp32
    /// dtype of saved `model.safetensors` (`--save-dtype fp32|fp16|bf16`), default fp32.
    public var saveDType: WeightDType = .fp32
    /// Seed of the data order (`--seed`), default 42.
    public var seed: Int = 42
    /// Compute the reference log-probs once before training and cache them in OUT (`--precompute-ref`), default off.
    public var precomputeReference: Bool = false
    /// Run each pair's shared prompt once for chosen and rejected (`--share-prompt`), default on:
    /// exact (same log-probs and gradients as the plain concatenated batch, to float32 rounding).
    public var sharePrompt: Bool = true
    /// Keep only each layer's input during the policy forward and recompute the layer in backward
    /// (`--gradient-checkpointing`), default off: exact (bit-identical gradients), less activation
    /// memory, about one more policy forward of time.
    public var gradientCheckpointing: Bool = false
    /// Ranks on one host map one read-only copy of the frozen reference from /dev/shm
    /// (`--shared-reference`), default on; not used with `--precompute-ref` (the model is freed).
    public var sharedReference: Bool = true
    /// Start even when the fit check estimates that a rank's peak memory exceeds what is available (`--force`), default off.
    public var force: Bool = false
    /// Stop after this many non-finite (skipped) steps in a row (`--max-skipped-steps`), default 10.
    public var maxSkippedSteps: Int = 10
    /// Size of a gradient all-reduce bucket in MiB (`--bucket-mb`), default 25.
    public var bucketMegabytes: Double = 25
    /// Gradient element type on the wire (`--allreduce-dtype fp32|fp16`), default nil = fp16 with
    /// `--precision fp16`, else fp32.
    public var allreduceDType: GradientReducer.WireType?
    /// ZeRO stage (`--zero 0|1|2`), default 0: every rank holds the whole fp32 master weights and
    /// AdamW moments. 1: each rank holds only its shard of them (gradients reduce-scattered,
    /// weights all-gathered); saves 12 P (N-1)/N bytes per rank on N ranks. 2: the fp32
    /// gradients too (a shard plus the buckets in flight), about 4 P (N-1)/N bytes more.
    public var zero: Int = 0
    /// Compare a checksum of the weights across ranks every N steps (`--check-every`, 0 = only at
    /// saves and the end), default 100.
    public var checkEvery: Int = 100
    /// BLAS threads per rank (`--threads`), default nil = this host's cores / ranks on it.
    public var threads: Int?
    /// Seconds one collective may wait for the other ranks before the job ends with exit status 76
    /// (`--collective-timeout`, 0 = no limit), default `CollectiveWatchdog.defaultTimeout` (300).
    public var collectiveTimeout: Double = CollectiveWatchdog.defaultTimeout

    // MARK: Logging, evaluation, checkpoints
    /// Log metrics every N optimizer steps (`--log-every`), default 10 (and always the last step).
    public var logEvery: Int = 10
    /// Evaluate on `--eval-data` every N steps (`--eval-every`), default 0 = only at the end.
    public var evalEvery: Int = 0
    /// Write `checkpoint-<step>/` every N steps (`--save-every`), default 0 = only `final/`.
    public var saveEvery: Int = 0
    /// Keep the newest K `checkpoint-<step>/` (`--keep-checkpoints`, 0 = all), default 3. `final/` is never removed.
    public var keepCheckpoints: Int = 3
    /// Resume even when `--model`/`--ref-model` hold other weights than the checkpoint started
    /// from (`--allow-changed-model`), default off: such a resume is refused, naming both.
    public var allowChangedModel: Bool = false
    /// Resume even when options that define the run (--loss, --beta, --precision, --seed...) changed
    /// (`--allow-changed-config`), default off: such a resume is refused, listing the changes.
    public var allowChangedConfig: Bool = false
    /// Drop training pairs whose chosen equals the rejected (`--skip-identical`), default on.
    public var skipIdentical: Bool = true

    // MARK: LoRA (see TrainingParameters+LoRA.swift)
    /// `--lora-r`, default nil = 0 = full fine-tuning.
    public var loraRank: Int?
    /// `--lora-alpha`, default 2r; `--lora-dropout`, default 0; `--lora-targets`, default all seven projections.
    public var loraAlpha: Double?
    public var loraDropout: Double?
    public var loraTargets: [LoRAModule]?
    /// `--adapter DIR`: continue training this PEFT LoRA adapter (its config gives r, alpha, targets).
    public var adapterDirectory: String?

    public init() {}

    enum CodingKeys: String, CodingKey {
        case modelDirectory = "model", referenceModelDirectory = "ref_model", dataFile = "data"
        case evalDataFile = "eval_data", outputDirectory = "out", resume, loss
        case learningRate = "lr", optimizer, schedule, warmupSteps = "warmup_steps", warmupRatio = "warmup_ratio"
        case maxGradNorm = "max_grad_norm", batchPairs = "batch_pairs", gradAccum = "grad_accum", epochs
        case maxSteps = "max_steps", maxLength = "max_length", maxPromptLength = "max_prompt_length", truncation, shuffle
        case skipInvalid = "skip_invalid", chatTemplate = "chat_template", promptKey = "prompt_key"
        case chosenKey = "chosen_key", rejectedKey = "rejected_key", groupByLength = "group_by_length", precision, saveDType = "save_dtype", seed
        case precomputeReference = "precompute_ref", sharePrompt = "share_prompt", maxSkippedSteps = "max_skipped_steps"
        case bucketMegabytes = "bucket_mb", logEvery = "log_every", evalEvery = "eval_every", saveEvery = "save_every"
        case keepCheckpoints = "keep_checkpoints", allreduceDType = "allreduce_dtype", checkEvery = "check_every", threads
        case collectiveTimeout = "collective_timeout", zero
        case gradientCheckpointing = "gradient_checkpointing", force, sharedReference = "shared_reference"
        case allowChangedModel = "allow_changed_model", allowChangedConfig = "allow_changed_config", skipIdentical = "skip_identical"
        case loraRank = "lora_r", loraAlpha = "lora_alpha", loraDropout = "lora_dropout", loraTargets = "lora_targets"
        case adapterDirectory = "adapter"
    }

    // MARK: - Validation

    /// Refuses values training cannot run with, naming the flag.
    public func validate() throws {
        func require(_ condition: Bool, _ message: @autoclosure () -> String) throws {
            if !condition { throw TrainingError.invalidOption(message()) }
        }
        try require(!modelDirectory.isEmpty, "--model is required")
        try require(!dataFile.isEmpty, "--data is required")
        try require(!outputDirectory.isEmpty, "--out is required")
        do { try loss.validate() } catch { throw TrainingError.invalidOption("\(error)") }
        try optimizer.validate()
        try require(learningRate.isFinite && learningRate >= 0, "--lr must be >= 0, got \(learningRate)")
        try require(warmupSteps >= 0, "--warmup-steps must be >= 0, got \(warmupSteps)")
        try require(warmupRatio >= 0 && warmupRatio < 1, "--warmup-ratio must be in [0, 1), got \(warmupRatio)")
        try require(maxGradNorm.isFinite && maxGradNorm >= 0, "--max-grad-norm must be >= 0, got \(maxGradNorm)")
        try require(batchPairs >= 1, "--batch-pairs must be >= 1, got \(batchPairs)")
        try require(gradAccum >= 1, "--grad-accum must be >= 1, got \(gradAccum)")
        try require(epochs >= 1 || maxSteps > 0, "--epochs must be >= 1 (or give --max-steps), got \(epochs)")
        try require(maxSteps >= 0, "--max-steps must be >= 0, got \(maxSteps)")
        try require(maxLength > 1, "--max-length must be > 1, got \(maxLength)")
        try require(maxPromptLength >= 1, "--max-prompt-length must be >= 1, got \(maxPromptLength)")
        try require(maxSkippedSteps >= 1, "--max-skipped-steps must be >= 1, got \(maxSkippedSteps)")
        try require(bucketMegabytes > 0 && bucketMegabytes.isFinite, "--bucket-mb must be > 0, got \(bucketMegabytes)")
        try require((0...2).contains(zero),
                    "--zero must be 0 (no sharding), 1 (ZeRO stage 1: optimizer state sharded over ranks) or 2 (ZeRO stage 2: gradients too), got \(zero)")
        try require(checkEvery >= 0, "--check-every must be >= 0, got \(checkEvery)")
        try require(threads.map { $0 >= 1 } ?? true, "--threads must be >= 1, got \(threads ?? 0)")
        try require(collectiveTimeout >= 0, "--collective-timeout must be 0 (no limit) or a positive number of seconds, got \(collectiveTimeout)")
        try require(logEvery >= 1, "--log-every must be >= 1, got \(logEvery)")
        try require(evalEvery >= 0, "--eval-every must be >= 0, got \(evalEvery)")
        try require(saveEvery >= 0, "--save-every must be >= 0, got \(saveEvery)")
        try require(keepCheckpoints >= 0, "--keep-checkpoints must be >= 0, got \(keepCheckpoints)")
        try validateLoRA()
    }

    /// Encoding options of the data, as `dpo train`, `dpo logps` and `dpo eval` share them.
    public var encodingOptions: EncodingOptions {
        EncodingOptions(maxLength: maxLength, maxPromptLength: maxPromptLength, truncation: truncation,
                        chatTemplate: chatTemplate)
    }

    /// How the data files are read, as `dpo train`, `dpo logps` and `dpo eval` share it.
    public var readOptions: DatasetReadOptions {
        DatasetReadOptions(keys: DatasetKeys(prompt: promptKey, chosen: chosenKey, rejected: rejectedKey),
                           skipInvalid: skipInvalid)
    }
}

// MARK: - The option table

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

    // MARK: Value parsers

    private static func int(_ name: String, _ value: String) throws -> Int {
        guard let v = Int(value.trimmingCharacters(in: .whitespaces)) else {
            throw TrainingError.invalidOption("--\(name) takes an integer, got '\(value)'")
        }
        return v
    }

    private static func double(_ name: String, _ value: String) throws -> Double {
        guard let v = Double(value.trimmingCharacters(in: .whitespaces)), v.isFinite else {
            throw TrainingError.invalidOption("--\(name) takes a number, got '\(value)'")
        }
        return v
    }

    private static func bool(_ name: String, _ value: String) throws -> Bool {
        switch value.lowercased().trimmingCharacters(in: .whitespaces) {
        case "true", "yes", "1", "on", "": return true
        case "false", "no", "0", "off": return false
        default: throw TrainingError.invalidOption("--\(name) takes true or false, got '\(value)'")
        }
    }

    private static func choice<T: RawRepresentable & CaseIterable>(_ name: String, _ value: String, _: T.Type) throws -> T
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
               help: "Ranks on one host share one read-only copy of the reference model (mapped from /dev/shm, removed once mapped); "
                   + "not used with --precompute-ref")
            { $0.sharedReference = try bool("shared-reference", $1) },
        Option(name: "force", valueName: "true|false", defaultValue: "false",
               help: "Start even when the fit check estimates that a rank's peak memory exceeds the memory available to it")
            { $0.force = try bool("force", $1) },
        Option(name: "max-skipped-steps", valueName: "N", defaultValue: "10",
               help: "Stop after N non-finite (skipped) steps in a row") { $0.maxSkippedSteps = try int("max-skipped-steps", $1) },
        Option(name: "bucket-mb", valueName: "MB", defaultValue: "25", help: "Gradient all-reduce bucket size in MiB")
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
