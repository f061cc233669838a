import Kernels

/// Every buffer one forward/backward needs, allocated for a capacity (tokens per batch, attention
/// scratch) and reused by every batch that fits, so batches padded to
/// different lengths do not allocate in the hot loop; it only grows.
///
/// Saved activations (what backward reads) go through `SavedActivations`, which keeps them
/// in float32 or binary16 by precision; everything else here is float32 scratch.
/// N = rows * seqLen, H = hidden, F = intermediate, Q = heads*headDim, K = kvHeads*headDim.
///
/// Buffers whose lives never overlap share memory (by layer step, forward and backward alike,
/// a checkpointing recompute included). One block holds, in turn, a norm's output (consumed by
/// the projections after it), the attention output (consumed by o_proj; backward recomputes it
/// after the MLP block) and the SwiGLU output (consumed by down_proj). Another holds, in turn,
/// the SwiGLU output's gradient, a norm output's gradient and the attention output's gradient,
/// with q|k|v's gradient beside the last two (each consumed before the next is produced).
/// smollm2-135m, 2048 tokens: 27 MB less than a buffer each.
final class ActivationArena {
    struct Capacity: Equatable {
        /// rows * seqLen.
        var tokens: Int
        /// Tokens of the residual stream (`.layerInput`'s work buffer) without saving: more than
        /// `tokens` for a layer-major forward in row chunks (`LlamaModel.forwardInChunks`), which keeps
        /// the whole batch's stream and runs one chunk at a time through the rest. `tokens` otherwise.
        var streamTokens: Int
        /// Floats of attention scratch (each head's softmax weights, never kept; score gradients;
        /// the shared-prompt gathers): a slot per BLAS thread.
        var attentionScratch: Int
        /// Positions the LM head runs on (a shared-prompt batch can label one token twice).
        var labelled: Int
        var saving: Bool

        init(tokens: Int, attentionScratch: Int, labelled: Int, saving: Bool, streamTokens: Int? = nil) {
            precondition(!saving || (streamTokens ?? tokens) == tokens, "a saving arena's stream holds exactly its tokens")
            self.tokens = tokens
            self.streamTokens = max(tokens, streamTokens ?? tokens)
            self.labelled = labelled
            self.attentionScratch = attentionScratch
            self.saving = saving
        }

        /// Whether an arena of this capacity can run a batch that needs `other`.
        func holds(_ other: Capacity) -> Bool {
            other.tokens <= tokens && other.streamTokens <= streamTokens && other.attentionScratch <= attentionScratch
                && other.labelled <= labelled && (saving || !other.saving)
        }

        func union(_ other: Capacity) -> Capacity {
            var c = self
            c.tokens = max(tokens, other.tokens)
            c.saving = saving || other.saving
            // A saving arena's stream is its first layer's saved input: exactly its tokens.
            c.streamTokens = c.saving ? c.tokens : max(streamTokens, other.streamTokens)
            c.attentionScratch = max(attentionScratch, other.attentionScratch)
            c.labelled = max(labelled, other.labelled)
            return c
        }
    }

    let capacity: Capacity
    let config: LlamaConfig
    let saved: SavedActivations
    /// The batch shape being run now, and its first token in the residual stream (set by `use`).
    private(set) var rows = 0, seqLen = 0, firstToken = 0

    // MARK: Forward scratch (float32)
    /// SwiGLU output `[N, F]`; its memory also holds `normed` and `attention` (see the type's comment).
    let mlpHidden: FloatBuffer
    /// Normalised stream `[N, H]` (input of q/k/v, gate/up, LM head). Shares `mlpHidden`'s memory.
    var normed: UnsafeMutablePointer<Float> { mlpHidden.pointer }
    /// Attention output `[N, Q]` (o_proj's input): not saved for backward, which recomputes it
    /// with the softmax weights it recomputes anyway. Shares `mlpHidden`'s memory.
    var attention: UnsafeMutablePointer<Float> { mlpHidden.pointer }
    /// 1/rms of each RMSNorm input: `2L + 1` rows of capacity-N (input norm of layer l at 2l,
    /// post-attention at 2l+1, final at 2L).
    let rstd: FloatBuffer
    /// Labelled positions' final normed states `[M, H]`, their log-sum-exp and log-probs `[M]` (M = capacity.labelled).
    let labelledHidden: FloatBuffer
    let logSumExp: FloatBuffer
    let labelLogps: FloatBuffer
    /// Logits of one position chunk x vocabulary panel of the LM head.
    let logitsChunk: FloatBuffer

    /// Attention scratch (`capacity.attentionScratch` floats; nil when none is needed).
    let attentionScratch: FloatBuffer?

    // MARK: Backward scratch (float32, only when saving)
    let dStream: FloatBuffer?
    /// `[N, F]`; its memory also holds `dNormed` `[N, H]` or `dAttention` `[N, Q]`, and `dQKV`
    /// `[N, Q + 2K]` after the wider of those two.
    let dMLPHidden, dGateUp: FloatBuffer?
    var dNormed: UnsafeMutablePointer<Float>? { dMLPHidden?.pointer }
    var dAttention: UnsafeMutablePointer<Float>? { dMLPHidden?.pointer }
    var dQKV: UnsafeMutablePointer<Float>? { dMLPHidden.map { $0.pointer + capacity.tokens * max(config.qDim, config.hiddenSize) } }
    let dLabelledHidden, dLabelLogps: FloatBuffer?

    /// - Parameter checkpointing: keep only each layer's input for backward (see `SavedActivations`).
    init(config c: LlamaConfig, capacity: Capacity, precision: Precision, checkpointing: Bool = false) {
        self.capacity = capacity
        self.config = c
        let n = capacity.tokens
        let h = c.hiddenSize, f = c.intermediateSize, q = c.qDim, k = c.kvDim, L = c.numHiddenLayers
        saved = SavedActivations(config: c, tokens: n, layers: L, saving: capacity.saving, precision: precision,
                                 checkpointing: checkpointing, streamTokens: capacity.streamTokens)
        mlpHidden = FloatBuffer(count: n * max(f, q, h))
        rstd = FloatBuffer(count: (2 * L + 1) * n)
        let labelled = max(1, capacity.labelled)
        labelledHidden = FloatBuffer(count: labelled * h)
        logSumExp = FloatBuffer(count: labelled)
        labelLogps = FloatBuffer(count: labelled)
        logitsChunk = FloatBuffer(count: min(LabelLogProbs.panelPositions, labelled) * min(LabelLogProbs.panelRows, c.vocabSize))
        func backwardBuffer(_ count: Int) -> FloatBuffer? { capacity.saving ? FloatBuffer(count: count) : nil }
        dStream = backwardBuffer(n * h)
        dMLPHidden = backwardBuffer(n * max(f, max(q, h) + q + 2 * k))
        // Under fp16 the gate|up gradient overwrites the restored float32 copy of gate|up in place.
        dGateUp = precision == .fp32 ? backwardBuffer(n * 2 * f) : nil
        attentionScratch = capacity.attentionScratch > 0 ? FloatBuffer(count: capacity.attentionScratch) : nil
        dLabelledHidden = backwardBuffer(labelled * h)
        dLabelLogps = backwardBuffer(labelled)
    }

    /// Points the arena at a batch shape that fits its capacity, whose residual stream starts at
    /// token `firstToken` of the stream buffer (a row chunk of a layer-major forward; 0 otherwise).
    func use(rows: Int, seqLen: Int, firstToken: Int = 0) {
        precondition(rows * seqLen <= capacity.tokens && firstToken + rows * seqLen <= capacity.streamTokens)
        self.rows = rows
        self.seqLen = seqLen
        self.firstToken = firstToken
        saved.setActive(tokens: rows * seqLen, firstToken: firstToken)
    }

    /// Float32 memory no kind uses once a non-saving forward has run the stack (the gate|up work
    /// buffer): a layer-major forward gathers its LM-head inputs there. `capacity.tokens` x
    /// max(2F, Q + 2K) floats.
    var idleAfterStack: UnsafeMutableBufferPointer<Float> { saved.projectionWork }

    /// Threads the attention kernels may run on `batch` with: the slots `attentionScratch` has
    /// (sized for the thread count when the arena was made: one slot per thread, not per job).
    func attentionWorkers(_ batch: StackInput) -> Int {
        let slots = (attentionScratch?.count ?? 0) / batch.attentionScratchSlot(config)
        precondition(slots >= 1, "attention scratch of \(attentionScratch?.count ?? 0) floats holds no slot for this batch")
        return slots
    }

    /// Bytes held (the saved activations and every scratch buffer; for memory estimates and tests).
    var byteCount: Int {
        let buffers: [FloatBuffer?] = [mlpHidden, rstd, labelledHidden, logSumExp, labelLogps, logitsChunk, attentionScratch,
                                       dStream, dMLPHidden, dGateUp, dLabelledHidden, dLabelLogps]
        return saved.byteCount + buffers.reduce(0) { $0 + 4 * ($1?.count ?? 0) }
    }

    /// Gives the pages of every buffer of a forward-only arena back to the kernel (see
    /// `ScalarBuffer.releasePages`); the next forward faults in zeroed pages and overwrites
    /// them as it always does (nothing here is read before it is written in a forward). Why:
    /// the reference's arena is idle from the end of its forward until the next step's, which
    /// spans the policy's backward, the peak of the step. Returns the bytes released.
    @discardableResult
    func releasePagesBetweenForwards() -> Int {
        precondition(!capacity.saving, "a saving arena holds activations backward still reads")
        let buffers: [FloatBuffer?] = [mlpHidden, rstd, labelledHidden, logSumExp, labelLogps, logitsChunk, attentionScratch]
        return saved.releaseWorkPages() + buffers.reduce(0) { $0 + ($1?.releasePages() ?? 0) }
    }

    /// `rstd` row of norm `index` (see `rstd`).
    func rstd(_ index: Int) -> UnsafeMutablePointer<Float> { rstd.pointer + index * capacity.tokens }
}

/// The activations backward reads, per layer, in the precision's storage type.
///
/// Forward computes each into `buffer(kind, layer)` (float32) and calls `commit`; backward
/// reads it back with `restore` (a float32 pointer). Under fp32 the buffer *is* the saved
/// slot; under fp16 it is a shared float32 work buffer per kind, and commit/restore convert
/// the active part to and from binary16 slots. Without saving, every layer shares the work buffer.
/// Work buffers whose lives never overlap share memory: `.middle` is `.layerInput`'s (the
/// stream is updated in place; backward restores the middle stream only after it is done with
/// the next layer's input, and the layer's input only after the middle stream), and `.qkv` is
/// the front of `.gateUp`'s (q|k|v is consumed by attention before gate|up is computed, and
/// restored only after gate|up's gradient is consumed).
///
/// Without saving, the stream's work buffer may hold more tokens than the batch (a layer-major
/// forward's whole stream, `streamTokens`), the active batch's rows starting at `firstToken`.
///
/// `commit` and `restore` are a threaded pass each; `rowCommit` and `rowRestore` give the same
/// conversion one token row at a time, for a threaded kernel that reads the rows anyway to run
/// (one fork/join less per kind and layer: 8 per layer and step under fp16).
///
/// With `checkpointing` (`--gradient-checkpointing`), only `.layerInput` has a slot per layer,
/// kept in float32 under both precisions (the exact stream the forward ran on, so the layer's
/// recomputation repeats it bit for bit); every other kind has the storage of one layer, which
/// backward refills by recomputing the layer (`recomputing` true) just before it needs it.
/// Under fp16 `restore` still hands out binary16-rounded values (`.layerInput` included), so
/// backward sees exactly what it sees without checkpointing.
final class SavedActivations {
    enum Kind: Int, CaseIterable {
        /// Residual stream entering layer l `[N, H]` (slot L is the final norm's input).
        case layerInput
        /// Rotated queries, rotated keys and values side by side `[N, Q + 2K]` (one matmul
        /// against the stacked [q_proj; k_proj; v_proj]).
        case qkv
        /// Stream after the attention residual `[N, H]`.
        case middle
        /// MLP gate and up projections side by side `[N, 2F]` (one matmul against [gate_proj; up_proj]).
        case gateUp
        /// Queries and keys before their per-head norm `[N, Q + K]` (Qwen3; width 0 otherwise).
        case qkPreNorm
    }

    let saving: Bool
    let precision: Precision
    /// Only layer inputs are kept per layer (see the type's comment); false without saving.
    let checkpointing: Bool
    /// Set while backward recomputes a layer under checkpointing: only then are the layer's
    /// other kinds committed (the first forward discards them).
    var recomputing = false
    /// Values per slot at capacity (slot strides), and for the active batch.
    private let capacityCounts: [Int]
    private var activeCounts: [Int]
    private let widths: [Int]
    /// Float32 work memory per kind (fp16 or no saving; see the type's comment for the sharing).
    private var work: [UnsafeMutablePointer<Float>] = []
    private var workBuffers: [FloatBuffer] = []
    private var full: [FloatBuffer] = []
    private var half: [HalfBuffer] = []
    /// Checkpointing: the float32 layer inputs `[layers + 1, N, H]`.
    private var layerInputs: FloatBuffer?

    init(config c: LlamaConfig, tokens n: Int, layers: Int, saving: Bool, precision: Precision, checkpointing: Bool = false,
         streamTokens: Int? = nil) {
        precondition(!saving || (streamTokens ?? n) == n, "a saving forward's stream holds exactly its tokens")
        self.saving = saving
        self.precision = precision
        self.checkpointing = saving && checkpointing
        let widths = Kind.allCases.map { widthsFor(c, $0) }
        self.widths = widths
        capacityCounts = Kind.allCases.map { n * widths[$0.rawValue] }
        activeCounts = capacityCounts
        if self.checkpointing { layerInputs = FloatBuffer(count: (layers + 1) * n * c.hiddenSize) }
        // Checkpointing: one layer's slot per kind (`.layerInput`'s only rounds under fp16).
        let slotsPerKind = Kind.allCases.map { self.checkpointing ? 1 : $0 == .layerInput ? layers + 1 : layers }
        for kind in Kind.allCases {
            let count = capacityCounts[kind.rawValue], slots = slotsPerKind[kind.rawValue]
            if saving && precision == .fp32 {
                full.append(FloatBuffer(count: count * slots))
            } else if saving {
                half.append(HalfBuffer(count: count * slots))
            }
        }
        if !(saving && precision == .fp32) {
            func count(_ kind: Kind) -> Int { capacityCounts[kind.rawValue] }
            let stream = FloatBuffer(count: max(n, streamTokens ?? n) * c.hiddenSize)
            let projections = FloatBuffer(count: max(count(.gateUp), count(.qkv)))
            let preNorm = FloatBuffer(count: count(.qkPreNorm))
            workBuffers = [stream, projections, preNorm]
            work = Kind.allCases.map { kind in
                switch kind {
                case .layerInput, .middle: return stream.pointer
                case .qkv, .gateUp: return projections.pointer
                case .qkPreNorm: return preNorm.pointer
                }
            }
        }
    }

    /// Sets how many values of each slot the current batch uses, and where its rows start in the
    /// stream's work buffer (not saving; 0 otherwise).
    func setActive(tokens: Int, firstToken: Int = 0) {
        activeCounts = Kind.allCases.map { tokens * widths[$0.rawValue] }
        guard !workBuffers.isEmpty else { return }
        precondition(firstToken == 0 || !saving, "a saving forward's stream starts at its first token")
        let stream = workBuffers[0]
        precondition((firstToken + tokens) * widths[Kind.layerInput.rawValue] <= stream.count, "rows past the stream's work buffer")
        work[Kind.layerInput.rawValue] = stream.pointer + firstToken * widths[Kind.layerInput.rawValue]
        work[Kind.middle.rawValue] = work[Kind.layerInput.rawValue]
    }

    /// The gate|up (and q|k|v) work buffer, for a non-saving forward to use once the stack has run.
    var projectionWork: UnsafeMutableBufferPointer<Float> {
        precondition(!saving, "a saving forward's projections are saved activations")
        return UnsafeMutableBufferPointer(start: workBuffers[1].pointer, count: workBuffers[1].count)
    }

    /// Where forward computes `kind` of `layer` (float32).
    func buffer(_ kind: Kind, _ layer: Int) -> UnsafeMutablePointer<Float> {
        if checkpointing {
            if kind == .layerInput { return layerInputs!.pointer + layer * capacityCounts[kind.rawValue] }
            return precision == .fp32 ? full[kind.rawValue].pointer : work[kind.rawValue]
        }
        if saving && precision == .fp32 { return full[kind.rawValue].pointer + layer * capacityCounts[kind.rawValue] }
        return work[kind.rawValue]
    }

    /// Stores the computed buffer of `kind`/`layer` for backward (a conversion under fp16).
    func commit(_ kind: Kind, _ layer: Int) {
        guard saving, precision == .fp16 else { return }
        // Checkpointing: layer inputs are already kept in float32; the rest only when recomputed, in one slot.
        if checkpointing && (kind == .layerInput || !recomputing) { return }
        let slot = half[kind.rawValue].pointer + (checkpointing ? 0 : layer) * capacityCounts[kind.rawValue]
        let source = work[kind.rawValue]
        Parallel.forChunks(activeCounts[kind.rawValue], minimumChunk: 1 << 16) { range in
            Half.fromFloat(source + range.lowerBound, slot + range.lowerBound, count: range.count)
        }
    }

    /// `commit` of one token row (`row(n)` converts row n), for a threaded pass over the rows to
    /// run: nil when `commit` does nothing (fp32, no saving, a kind checkpointing does not keep).
    func rowCommit(_ kind: Kind, _ layer: Int) -> ((Int) -> Void)? {
        guard saving, precision == .fp16 else { return nil }
        if checkpointing && (kind == .layerInput || !recomputing) { return nil }
        let width = widths[kind.rawValue]
        let slot = half[kind.rawValue].pointer + (checkpointing ? 0 : layer) * capacityCounts[kind.rawValue]
        let source = work[kind.rawValue]
        return { n in Half.fromFloat(source + n * width, slot + n * width, count: width) }
    }

    /// `restore` of one token row at a time: where the float32 values of `kind`/`layer` are, and
    /// `row(n)`, which puts row n there (nil: they are there already, fp32), for a threaded pass
    /// over the rows to run before it reads row n. Every row must be put before the values are read
    /// as a whole.
    func rowRestore(_ kind: Kind, _ layer: Int) -> (values: UnsafeMutablePointer<Float>, row: ((Int) -> Void)?) {
        precondition(saving, "backward needs a forward with saveForBackward: true")
        let width = widths[kind.rawValue]
        if precision == .fp32 { return (restore(kind, layer), nil) }
        let destination = work[kind.rawValue]
        if checkpointing && kind == .layerInput {
            // The kept float32 input rounded through binary16, as `roundedThroughHalf`.
            let source = buffer(kind, layer), slot = half[kind.rawValue].pointer
            return (destination, { n in
                Half.fromFloat(source + n * width, slot + n * width, count: width)
                Half.toFloat(slot + n * width, destination + n * width, count: width)
            })
        }
        let slot = half[kind.rawValue].pointer + (checkpointing ? 0 : layer) * capacityCounts[kind.rawValue]
        return (destination, { n in Half.toFloat(slot + n * width, destination + n * width, count: width) })
    }

    /// The saved value of `kind`/`layer` as float32.
    func restore(_ kind: Kind, _ layer: Int) -> UnsafeMutablePointer<Float> {
        precondition(saving, "backward needs a forward with saveForBackward: true")
        if checkpointing && (precision == .fp32 || kind == .layerInput) {
            let stored = buffer(kind, layer)
            if precision == .fp32 { return stored }
            return roundedThroughHalf(stored, kind)
        }
        if precision == .fp32 { return full[kind.rawValue].pointer + layer * capacityCounts[kind.rawValue] }
        let destination = work[kind.rawValue]
        let slot = half[kind.rawValue].pointer + (checkpointing ? 0 : layer) * capacityCounts[kind.rawValue]
        Parallel.forChunks(activeCounts[kind.rawValue], minimumChunk: 1 << 16) { range in
            Half.toFloat(slot + range.lowerBound, destination + range.lowerBound, count: range.count)
        }
        return destination
    }

    /// `source` rounded to binary16 and back, in the work buffer of `kind` (fp16 checkpointing:
    /// the values backward would have restored from a binary16 slot).
    private func roundedThroughHalf(_ source: UnsafeMutablePointer<Float>, _ kind: Kind) -> UnsafeMutablePointer<Float> {
        let slot = half[kind.rawValue].pointer, destination = work[kind.rawValue]
        Parallel.forChunks(activeCounts[kind.rawValue], minimumChunk: 1 << 16) { range in
            Half.fromFloat(source + range.lowerBound, slot + range.lowerBound, count: range.count)
            Half.toFloat(slot + range.lowerBound, destination + range.lowerBound, count: range.count)
        }
        return destination
    }

    /// Releases the float32 work buffers' pages (a forward-only arena's; see
    /// `ActivationArena.releasePagesBetweenForwards`). Returns the bytes released.
    func releaseWorkPages() -> Int {
        precondition(!saving, "saved slots hold activations backward still reads")
        return workBuffers.reduce(0) { $0 + $1.releasePages() }
    }

    /// Bytes held (for memory reports).
    var byteCount: Int {
        full.reduce(0) { $0 + $1.count * 4 } + workBuffers.reduce(0) { $0 + $1.count * 4 } + half.reduce(0) { $0 + $1.count * 2 }
            + (layerInputs?.count ?? 0) * 4
    }
}

/// Values per token of each saved kind (the attention output and its softmax weights are never
/// saved: backward recomputes both).
private func widthsFor(_ c: LlamaConfig, _ kind: SavedActivations.Kind) -> Int {
    switch kind {
    case .layerInput, .middle: return c.hiddenSize
    case .qkv: return c.qDim + 2 * c.kvDim
    case .gateUp: return 2 * c.intermediateSize
    case .qkPreNorm: return c.hasQueryKeyNorm ? c.qDim + c.kvDim : 0
    }
}
