import Kernels
import Llama

/// The activation and scratch part of `MemoryGeometry`: what `ActivationArena` allocates for the
/// policy's saving forward + backward and for a frozen model's forward (no saving, rows in chunks
/// of `LlamaModel.forwardChunkTokens`), plus an fp16 model's float32 conversion scratch. Widths are
/// values per token (H hidden, F intermediate, Q = heads x head_dim, K = kv heads x head_dim,
/// L layers); see ActivationArena.swift for which buffers share memory.
extension MemoryGeometry {
    /// Saved per layer and token: layer input, q|k|v, middle stream, gate|up, q/k before their norm
    /// (Qwen3). The attention output is not saved (backward recomputes it).
    var savedWidth: Int {
        let c = config
        return 2 * c.hiddenSize + c.qDim + 2 * c.kvDim + 2 * c.intermediateSize + queryKeyNormWidth
    }

    /// Float32 work per token under fp16 or without saving: the stream, gate|up (q|k|v in its front), q/k before their norm.
    var workWidth: Int {
        let c = config
        return c.hiddenSize + max(2 * c.intermediateSize, c.qDim + 2 * c.kvDim) + queryKeyNormWidth
    }

    private var queryKeyNormWidth: Int { config.hasQueryKeyNorm ? config.qDim + config.kvDim : 0 }

    /// Float32 forward scratch per token: one block for the normed states, the attention output
    /// and the SwiGLU output, the 2L + 1 rows of 1/rms, the labelled positions' final states,
    /// log-sum-exp and log-prob (at most one labelled position per token).
    private var forwardScratchWidth: Int {
        let c = config
        return c.hiddenSize + 2 + max(c.intermediateSize, c.qDim, c.hiddenSize) + 2 * c.numHiddenLayers + 1
    }

    /// One LM-head panel of logits for `tokens` positions.
    private func logitsPanelBytes(tokens: Int) -> Int {
        4 * min(LabelLogProbs.panelPositions, max(1, tokens)) * min(LabelLogProbs.panelRows, config.vocabSize)
    }

    /// The policy's arena for `tokens`: saved activations, forward and backward scratch, attention scratch.
    var policyArenaBytes: Int {
        let c = config, n = tokens, h = c.hiddenSize, L = c.numHiddenLayers
        let perLayerSlots = (L + 1) * h + L * (savedWidth - h)
        let saved: Int
        if gradientCheckpointing {
            // L + 1 float32 layer inputs and one layer of every kind (under fp16 binary16 slots and float32 work).
            saved = precision == .fp32 ? 4 * n * ((L + 1) * h + savedWidth) : 4 * n * ((L + 1) * h + workWidth) + 2 * n * savedWidth
        } else {
            saved = precision == .fp32 ? 4 * n * perLayerSlots : 2 * n * perLayerSlots + 4 * n * workWidth
        }
        // Backward: dStream, the labelled positions' gradients, one block for the gradients of the
        // SwiGLU output, the normed states and the attention output (q|k|v's beside the last two),
        // and fp32's gate|up gradient.
        let block = max(c.intermediateSize, max(c.qDim, h) + c.qDim + 2 * c.kvDim)
        let backward = 2 * h + 1 + block + (precision == .fp32 ? 2 * c.intermediateSize : 0)
        return saved + 4 * n * (forwardScratchWidth + backward) + logitsPanelBytes(tokens: n) + attentionScratchBytes(rows: 2 * batchPairs)
    }

    /// A frozen model's forward arena: whole rows of at most `forwardChunkTokens` tokens at once,
    /// and in row chunks (layer-major) the whole batch's residual stream instead of the chunk's.
    var forwardArenaBytes: Int {
        let rows = 2 * batchPairs
        let chunkRows = tokens <= forwardChunkTokens ? rows : min(rows, max(1, forwardChunkTokens / max(1, longestRow)))
        let n = chunkRows * longestRow
        let wholeStream = 4 * (rows - chunkRows) * longestRow * config.hiddenSize
        return 4 * n * (workWidth + forwardScratchWidth) + wholeStream + logitsPanelBytes(tokens: n) + attentionScratchBytes(rows: chunkRows)
    }

    /// One slot per BLAS thread (at most one per row and kv head) of one head's softmax weights
    /// `[T, T]`, its output and score gradients `[T, headDim]`, `[64, T]`.
    func attentionScratchBytes(rows: Int) -> Int {
        let c = config, t = longestRow
        let slots = min(rows * c.numKeyValueHeads, max(1, threads))
        return 4 * slots * (t * t + t * c.headDim + Attention.queryBlock * t)
    }

    /// An fp16 model's float32 conversion scratch: its largest layer matrix and one LM-head panel.
    var conversionScratchBytes: Int {
        guard precision == .fp16 else { return 0 }
        let c = config, h = c.hiddenSize
        return 4 * (max(2 * c.intermediateSize, c.qDim + 2 * c.kvDim, c.qDim) * h + min(LabelLogProbs.panelRows, c.vocabSize) * h)
    }
}
