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
        let h = c.hiddenSize, f = c.intermediateSize, q = c.qDim, k = c.kvDim, L = c.numHiddenLayers
        // Saved for backward per layer and token: layer input, q/k/v, attention output, middle stream, gate/up.
        let perLayer = h + q + 2 * k + q + h + 2 * f
        // Checkpointing: L + 1 float32 layer inputs, one layer of the rest (with float32 work buffers under fp16).
        let savedPerToken = gradientCheckpointing
            ? (L + 1) * h * 4 + perLayer * (workingBytes + (precision == .fp16 ? 4 : 0))
            : L * perLayer * workingBytes
        // Float32 scratch per token: forward (normed, SwiGLU, rstd) and backward (streams, MLP, q/k/v, attention).
        let scratchPerToken = 4 * (h + f + 2 * L + 1 + 2 * h + 3 * f + q + 2 * k + q)
        // The LM head runs one vocabulary panel at a time: a logged step's `logits/*` sums hold
        // [tokens, panel] logits (never the full [tokens, vocab]); the loss's chunk is smaller.
        let logits = tokens * min(c.vocabSize, LabelLogProbs.panelRows) * 4
        let activations = tokens * (savedPerToken + scratchPerToken) + logits
        let referenceBytes: Int
        switch reference {
        case .none: referenceBytes = 0
        case .model: referenceBytes = parameters * workingBytes / max(1, referenceSharedBy) + tokens * 4 * (2 * h + f)
        case .cached(let pairs): referenceBytes = 2 * pairs * 4
        case .baseModel: referenceBytes = tokens * 4 * (2 * h + f)
        }
        return .init(weightsBytes: weights, optimizerBytes: optimizer, activationsBytes: activations, referenceBytes: referenceBytes,
                     runtimeBytes: runtimeBytes)
    }
}
