import Kernels

/// Every buffer one forward/backward of a given batch shape needs, allocated once per
/// shape and reused across steps (no allocation in the hot loop).
///
/// Saved activations (what backward reads) go through `SavedActivations`, which keeps them
/// in float32 or binary16 by precision; everything else here is float32 scratch.
/// N = rows * seqLen, H = hidden, F = intermediate, Q = heads*headDim, K = kvHeads*headDim.
final class ActivationArena {
    struct Shape: Equatable {
        var rows: Int, seqLen: Int, saving: Bool
    }

    let shape: Shape
    let saved: SavedActivations

    // MARK: Forward scratch (float32)
    /// Normalised stream `[N, H]` (input of q/k/v, gate/up, LM head).
    let normed: FloatBuffer
    /// SwiGLU output `[N, F]`.
    let mlpHidden: FloatBuffer
    /// 1/rms of each RMSNorm input: `[2L + 1, N]` (input norm of layer l at 2l, post-attention at 2l+1, final at 2L).
    let rstd: FloatBuffer
    /// Labelled positions' final normed states `[N, H]` and their log-sum-exp `[N]`.
    let labelledHidden: FloatBuffer
    let logSumExp: FloatBuffer
    let labelLogps: FloatBuffer
    /// Logits chunk of the LM head `[LabelLogProbs.chunkRows, V]`.
    let logitsChunk: FloatBuffer

    // MARK: Backward scratch (float32, only when saving)
    let dStream, dNormed: FloatBuffer?
    let dMLPHidden, dGateUp: FloatBuffer?
    let dQuery, dKey, dValue, dAttention: FloatBuffer?
    let attentionScratch: FloatBuffer?
    let dLabelledHidden, dLabelLogps: FloatBuffer?

    init(config c: LlamaConfig, shape: Shape, precision: Precision) {
        self.shape = shape
        let n = shape.rows * shape.seqLen
        let h = c.hiddenSize, f = c.intermediateSize, q = c.qDim, k = c.kvDim, L = c.numHiddenLayers
        let attentionShape = Attention.Shape(rows: shape.rows, seqLen: shape.seqLen, heads: c.numAttentionHeads,
                                             kvHeads: c.numKeyValueHeads, headDim: c.headDim)
        saved = SavedActivations(config: c, tokens: n, probsCount: attentionShape.probsCount,
                                 layers: L, saving: shape.saving, precision: precision)
        normed = FloatBuffer(count: n * h)
        mlpHidden = FloatBuffer(count: n * f)
        rstd = FloatBuffer(count: (2 * L + 1) * n)
        labelledHidden = FloatBuffer(count: n * h)
        logSumExp = FloatBuffer(count: n)
        labelLogps = FloatBuffer(count: n)
        logitsChunk = FloatBuffer(count: min(LabelLogProbs.chunkRows, n) * c.vocabSize)
        func backwardBuffer(_ count: Int) -> FloatBuffer? { shape.saving ? FloatBuffer(count: count) : nil }
        dStream = backwardBuffer(n * h)
        dNormed = backwardBuffer(n * h)
        dMLPHidden = backwardBuffer(n * f)
        dGateUp = backwardBuffer(n * 2 * f)
        dQuery = backwardBuffer(n * q)
        dKey = backwardBuffer(n * k)
        dValue = backwardBuffer(n * k)
        dAttention = backwardBuffer(n * q)
        attentionScratch = backwardBuffer(attentionShape.backwardScratchCount)
        dLabelledHidden = backwardBuffer(n * h)
        dLabelLogps = backwardBuffer(n)
    }

    /// `rstd` row of norm `index` (see `rstd`).
    func rstd(_ index: Int) -> UnsafeMutablePointer<Float> { rstd.pointer + index * shape.rows * shape.seqLen }
}

/// The activations backward reads, per layer, in the precision's storage type.
///
/// Forward computes each into `buffer(kind, layer)` (float32) and calls `commit`; backward
/// reads it back with `restore` (a float32 pointer). Under fp32 the buffer *is* the saved
/// slot; under fp16 it is a shared float32 work buffer per kind, and commit/restore convert
/// to and from binary16 slots. Without saving, every layer shares the work buffer.
final class SavedActivations {
    enum Kind: Int, CaseIterable {
        /// Residual stream entering layer l `[N, H]` (slot L is the final norm's input).
        case layerInput
        /// Rotated queries/keys, values `[N, Q]`, `[N, K]`, `[N, K]`.
        case query, key, value
        /// Attention softmax weights `[rows, heads, T, T]`.
        case probs
        /// Attention output before o_proj `[N, Q]`.
        case attention
        /// Stream after the attention residual `[N, H]`.
        case middle
        /// MLP gate and up projections side by side `[N, 2F]` (one matmul against [gate_proj; up_proj]).
        case gateUp
    }

    let saving: Bool
    let precision: Precision
    private let counts: [Int]
    private let slotsPerKind: [Int]
    private var work: [FloatBuffer] = []
    private var full: [FloatBuffer] = []
    private var half: [HalfBuffer] = []

    init(config c: LlamaConfig, tokens n: Int, probsCount: Int, layers: Int, saving: Bool, precision: Precision) {
        self.saving = saving
        self.precision = precision
        counts = Kind.allCases.map { kind in
            switch kind {
            case .layerInput, .middle: return n * c.hiddenSize
            case .query, .attention: return n * c.qDim
            case .key, .value: return n * c.kvDim
            case .probs: return probsCount
            case .gateUp: return n * 2 * c.intermediateSize
            }
        }
        slotsPerKind = Kind.allCases.map { $0 == .layerInput ? layers + 1 : layers }
        for kind in Kind.allCases {
            let count = counts[kind.rawValue], slots = slotsPerKind[kind.rawValue]
            if saving && precision == .fp32 {
                full.append(FloatBuffer(count: count * slots))
            } else {
                work.append(FloatBuffer(count: count))
                if saving { half.append(HalfBuffer(count: count * slots)) }
            }
        }
    }

    /// Where forward computes `kind` of `layer` (float32).
    func buffer(_ kind: Kind, _ layer: Int) -> UnsafeMutablePointer<Float> {
        if saving && precision == .fp32 { return full[kind.rawValue].pointer + layer * counts[kind.rawValue] }
        return work[kind.rawValue].pointer
    }

    /// Stores the computed buffer of `kind`/`layer` for backward (a conversion under fp16).
    func commit(_ kind: Kind, _ layer: Int) {
        guard saving, precision == .fp16 else { return }
        let count = counts[kind.rawValue]
        Half.fromFloat(work[kind.rawValue].pointer, half[kind.rawValue].pointer + layer * count, count: count)
    }

    /// The saved value of `kind`/`layer` as float32.
    func restore(_ kind: Kind, _ layer: Int) -> UnsafeMutablePointer<Float> {
        precondition(saving, "backward needs a forward with saveForBackward: true")
        let count = counts[kind.rawValue]
        if precision == .fp32 { return full[kind.rawValue].pointer + layer * count }
        let destination = work[kind.rawValue].pointer
        Half.toFloat(half[kind.rawValue].pointer + layer * count, destination, count: count)
        return destination
    }

    /// Bytes held (for memory reports).
    var byteCount: Int {
        full.reduce(0) { $0 + $1.count * 4 } + work.reduce(0) { $0 + $1.count * 4 } + half.reduce(0) { $0 + $1.count * 2 }
    }
}
