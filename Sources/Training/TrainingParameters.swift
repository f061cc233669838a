import Distributed
import Foundation
import Llama
import Preference
import Tokenization

/// Everything `dpo train` can be told, with its documented default.
///
/// The option table `TrainingParameters.options` (TrainingParameters+Options.swift) is the single source of the flag names,
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
    /// Ranks on one host map one read-only copy of the frozen reference in shared memory
    /// (`--shared-reference`), default on; not used with `--precompute-ref` (the model is freed).
    public var sharedReference: Bool = true
    /// Start even when the fit check estimates that a rank's peak memory exceeds what is available (`--force`), default off.
    public var force: Bool = false
    /// Stop after this many non-finite (skipped) steps in a row (`--max-skipped-steps`), default 10.
    public var maxSkippedSteps: Int = 10
    /// Size of a gradient all-reduce bucket in MiB (`--bucket-mb`), default nil =
    /// `defaultBucketMegabytes(zero:)`: 25, or 4 with `--zero 2` (its window pages and fp16
    /// staging scale with the bucket: about 120 MB less VmHWM per rank on SmolLM2-135M, README "ZeRO-2").
    public var bucketMegabytes: Double?
    /// The bucket size in MiB this run uses: `--bucket-mb`, else the `--zero` stage's default.
    public var resolvedBucketMegabytes: Double { bucketMegabytes ?? Self.defaultBucketMegabytes(zero: zero) }
    /// `--bucket-mb`'s default: 4 with `--zero 2`, 25 otherwise.
    public static func defaultBucketMegabytes(zero: Int) -> Double { zero == 2 ? 4 : 25 }
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
        try require(bucketMegabytes.map { $0 > 0 && $0.isFinite } ?? true, "--bucket-mb must be > 0, got \(bucketMegabytes ?? 0)")
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
