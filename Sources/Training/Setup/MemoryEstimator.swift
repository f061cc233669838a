import Kernels
import Llama

/// Estimated peak bytes of one rank from the shapes alone (no weights loaded): what the
/// start-up summary prints and what the fit check compares with the memory available.
///
/// P parameters, N = 2 x pairs x longest row tokens of a micro-batch, L layers,
/// H hidden, F intermediate, Q = heads x head_dim, K = kv heads x head_dim.
struct MemoryGeometry {
    /// What holds the reference during the steps.
    enum Reference {
        case none
        /// A frozen model in the working precision.
        case model
        /// Precomputed sums (`--precompute-ref`): two floats per pair.
        case cached(pairs: Int)
        /// LoRA: the policy with its adapters off (no weights of its own, only scratch).
        case baseModel
    }

    var config: LlamaConfig
    var precision: Precision
    var batchPairs: Int
    /// Tokens of the longest row of a micro-batch.
    var longestRow: Int
    var gradientCheckpointing: Bool
    /// Floats of optimizer state (AdamW: 2P; SGD: 0).
    var optimizerStateCount: Int
    var reference: Reference
    /// Ranks mapping one copy of the reference model (`--shared-reference` on a host of that many ranks); 1 = a private copy.
    var referenceSharedBy = 1
    /// Parameters trained when they are not the model's (LoRA: the adapter vector, fp32); nil = all of them.
    var trainableCount: Int? = nil
    /// fp32 master weights this rank holds (`--zero 1|2`: its shard); nil = all trained parameters.
    var masterCount: Int? = nil
    /// fp32 gradients this rank holds (`--zero 2`: its shard plus the window pages in flight,
    /// `FitCheck.partitionedGradientCount`); nil = all trained parameters.
    var gradientCount: Int? = nil
    /// The gradient reduction's own buffers: fp16 staging between ranks (`WireStaging`: a few
    /// buckets) and, `--zero 1` with fp32 on the wire, the shard's mean gradients.
    var reductionBytes = 0
    /// BLAS threads per rank (attention scratch is per thread).
    var threads = BLAS.threads
    /// Tokens a frozen model's forward runs at once (`LlamaModel.forwardChunkTokens`).
    var forwardChunkTokens = 1024

    var parameterCount: Int { ParameterLayout(config: config).totalCount }
    var tokens: Int { 2 * batchPairs * longestRow }

    /// The estimate, by what holds it (`runtimeBytes` measured by the caller, 0 = not counted).
    func estimate(runtimeBytes: Int = 0) -> ProgressStartupSummary.MemoryEstimate {
        let c = config, parameters = parameterCount
        let workingBytes = precision == .fp16 ? 2 : 4
        let trained = trainableCount ?? parameters
        // Master weights (fp32; a shard with --zero 1) + the policy's working copy (LoRA: the
        // frozen base in the working precision plus the fp32 adapters).
        let weights = (masterCount ?? trained) * 4 + parameters * workingBytes + (trainableCount == nil ? 0 : trained * 4)
        // Gradients (fp32, of what is trained) + optimizer state + the reduction's buffers (the
        // optimizer's weight-decay choice is a short list of ranges, no per-parameter mask).
        let optimizer = (gradientCount ?? trained) * 4 + optimizerStateCount * 4 + reductionBytes
        // The policy's activations (see ActivationMemory.swift) and, under fp16, its conversion scratch.
        // The LM head runs one vocabulary panel at a time: a logged step's `logits/*` sums hold
        // [tokens, panel] logits (never the full [tokens, vocab]); the loss's chunk is smaller.
        let logits = tokens * min(c.vocabSize, LabelLogProbs.panelRows) * 4
        let activations = policyArenaBytes + conversionScratchBytes + logits
        let referenceBytes: Int
        switch reference {
        case .none: referenceBytes = 0
        case .model: referenceBytes = parameters * workingBytes / max(1, referenceSharedBy) + forwardArenaBytes + conversionScratchBytes
        case .cached(let pairs): referenceBytes = 2 * pairs * 4
        case .baseModel: referenceBytes = forwardArenaBytes
        }
        return .init(weightsBytes: weights, optimizerBytes: optimizer, activationsBytes: activations, referenceBytes: referenceBytes,
                     runtimeBytes: runtimeBytes)
    }
}
