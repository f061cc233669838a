import Kernels

/// A configuration the model cannot run (inconsistent shapes).
public struct LlamaModelError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// A LLaMA-architecture causal LM with hand-written forward and backward.
/// Not thread-safe: one caller at a time (its kernels use all of `BLAS.threads` themselves).
///
/// Weights live in one flat buffer in `ParameterLayout` order (float32 under `.fp32`,
/// binary16 under `.fp16`). `forward` gives per-token label log-probs; `backward` mirrors it
/// and accumulates parameter gradients into a caller-owned flat float32 buffer, reporting
/// each parameter group as soon as its gradient is final. A model made with
/// `trainable: false` (a frozen reference) holds only its weights and forward scratch.
public final class LlamaModel {
    public let config: LlamaConfig
    public let layout: ParameterLayout
    public let precision: Precision
    public let trainable: Bool

    // MARK: Weights
    /// Working weights, layout order: exactly one of the two is non-nil.
    let weights32: FloatBuffer?
    let weights16: HalfBuffer?
    /// Float32 copy of one decoder layer's weights under fp16 (its whole layout group, see
    /// `layerWeights`; a decoding step's `matrix` uses its start), of one LM-head panel
    /// (`LabelLogProbs.panelRows` vocabulary rows), and of norm weights.
    let layerScratch: FloatBuffer?
    let headPanelScratch: FloatBuffer?
    let normScratch: FloatBuffer?
    /// Float32 copy of a q/k/v bias or the q|k norm weights under fp16.
    let vectorScratch: FloatBuffer?

    // MARK: Offsets
    struct LayerOffsets {
        var inputNorm, query, key, value, output, postNorm, gate, up, down: Int
        /// The stacked [q; k; v] bias `[Q + 2K]` (Qwen2), and q_norm followed by k_norm `[2 * headDim]` (Qwen3).
        var qkvBias, queryKeyNorm: Int?
    }
    let layerOffsets: [LayerOffsets]
    let embedOffset: Int
    let finalNormOffset: Int
    /// embed_tokens when tied, lm_head otherwise.
    let lmHeadOffset: Int

    var rotary: Rotary

    /// LoRA adapters (nil: full fine-tuning); see LlamaModel+LoRA.swift.
    public internal(set) var adapters: LoRAAdapters?

    /// A forward without backward runs at most this many tokens (whole rows) at once, unless the
    /// arena already holds the whole batch: the frozen reference model's scratch stays small.
    public var forwardChunkTokens = 1024

    /// Keep only each layer's input during a saving forward and recompute the layer in backward
    /// (`--gradient-checkpointing`; see LlamaModel+Checkpointing.swift). Changing it drops the arena.
    public var gradientCheckpointing = false {
        didSet { if gradientCheckpointing != oldValue { arena = nil; lastInput = nil } }
    }

    // MARK: Per-batch state
    var arena: ActivationArena?
    /// What backward needs to know about the last forward.
    var lastInput: StackInput?

    /// Float32 conversions of binary16 weights so far (fp16 only): whole decoder layers
    /// (`layerWeights`) and LM-head panels (`headPanel`). For tests of how often a pass converts.
    var conversionCounts = (layers: 0, headPanels: 0)

    /// The host-shared read-only weights this model runs on (nil: its own); see `SharedWeights`.
    public let sharedWeights: SharedWeights?

    /// - Parameter sharedWeights: run on a host-shared read-only copy (a frozen model only;
    ///   `loadWeights` is then refused).
    public init(config: LlamaConfig, precision: Precision, trainable: Bool, sharedWeights: SharedWeights? = nil) throws {
        let c = config
        guard c.hiddenSize > 0, c.intermediateSize > 0, c.numHiddenLayers > 0, c.vocabSize > 0,
              c.numAttentionHeads > 0, c.numKeyValueHeads > 0, c.headDim > 0 else {
            throw LlamaModelError("config: hidden_size, intermediate_size, num_hidden_layers, vocab_size, num_attention_heads, num_key_value_heads and head_dim must all be positive")
        }
        guard c.numAttentionHeads % c.numKeyValueHeads == 0 else {
            throw LlamaModelError("config: num_attention_heads (\(c.numAttentionHeads)) must be a multiple of num_key_value_heads (\(c.numKeyValueHeads))")
        }
        guard c.headDim % 2 == 0 else {
            throw LlamaModelError("config: head_dim (\(c.headDim)) must be even for rotary embeddings")
        }
        self.config = c
        self.layout = ParameterLayout(config: c)
        self.precision = precision
        self.trainable = trainable
        let total = layout.totalCount
        if let sharedWeights {
            guard !trainable, sharedWeights.precision == precision, sharedWeights.count == total else {
                throw LlamaModelError("shared weights: \(sharedWeights.count) \(sharedWeights.precision.rawValue) values for a "
                                      + "\(trainable ? "trainable " : "")\(precision.rawValue) model of \(total) parameters")
            }
        }
        self.sharedWeights = sharedWeights
        if precision == .fp32 {
            weights32 = sharedWeights?.float32 ?? FloatBuffer(count: total); weights16 = nil
            layerScratch = nil; headPanelScratch = nil; normScratch = nil; vectorScratch = nil
        } else {
            weights32 = nil; weights16 = sharedWeights?.float16 ?? HalfBuffer(count: total)
            // The largest decoder layer (every layer's group is its norms, q/k/v, o, gate/up, down
            // and biases). The embedding and LM head never need a whole float32 copy (lookups read
            // binary16 rows, the head runs in panels).
            let groups = layout.groupRanges
            layerScratch = FloatBuffer(count: (1...c.numHiddenLayers).map { groups[$0].count }.max()!)
            headPanelScratch = FloatBuffer(count: min(LabelLogProbs.panelRows, c.vocabSize) * c.hiddenSize)
            normScratch = FloatBuffer(count: c.hiddenSize)
            vectorScratch = FloatBuffer(count: max(c.qDim + 2 * c.kvDim, 2 * c.headDim))
        }
        layerOffsets = (0..<c.numHiddenLayers).map { [layout] i in
            let p = "model.layers.\(i)."
            return LayerOffsets(
                inputNorm: layout.entry(p + "input_layernorm.weight").offset,
                query: layout.entry(p + "self_attn.q_proj.weight").offset,
                key: layout.entry(p + "self_attn.k_proj.weight").offset,
                value: layout.entry(p + "self_attn.v_proj.weight").offset,
                output: layout.entry(p + "self_attn.o_proj.weight").offset,
                postNorm: layout.entry(p + "post_attention_layernorm.weight").offset,
                gate: layout.entry(p + "mlp.gate_proj.weight").offset,
                up: layout.entry(p + "mlp.up_proj.weight").offset,
                down: layout.entry(p + "mlp.down_proj.weight").offset,
                qkvBias: layout[p + "self_attn.q_proj.bias"]?.offset,
                queryKeyNorm: layout[p + "self_attn.q_norm.weight"]?.offset)
        }
        // gate_proj and up_proj are adjacent in the layout: one [2F, H] matmul computes both.
        // q_proj, k_proj, v_proj are adjacent too: one [Q + 2K, H] matmul.
        for (i, o) in layerOffsets.enumerated() {
            precondition(o.up == o.gate + c.intermediateSize * c.hiddenSize, "layout: up_proj must follow gate_proj")
            precondition(o.key == o.query + c.qDim * c.hiddenSize && o.value == o.key + c.kvDim * c.hiddenSize,
                         "layout: q_proj, k_proj, v_proj must be adjacent")
            if let bias = o.qkvBias {
                let p = "model.layers.\(i).self_attn."
                precondition(layout.entry(p + "k_proj.bias").offset == bias + c.qDim
                             && layout.entry(p + "v_proj.bias").offset == bias + c.qDim + c.kvDim, "layout: q/k/v biases must be adjacent")
            }
            if let norm = o.queryKeyNorm {
                precondition(layout.entry("model.layers.\(i).self_attn.k_norm.weight").offset == norm + c.headDim,
                             "layout: k_norm must follow q_norm")
            }
        }
        embedOffset = layout.entry("model.embed_tokens.weight").offset
        finalNormOffset = layout.entry("model.norm.weight").offset
        lmHeadOffset = c.tieWordEmbeddings ? embedOffset : layout.entry("lm_head.weight").offset
        rotary = c.rotary(maxPositions: max(c.maxPositionEmbeddings, 1))
        BLAS.ensureBestCore()
    }

    // MARK: - Weights in and out

    /// Replaces the working weights (float32, layout order; rounded to binary16 under fp16).
    public func loadWeights(_ flat: UnsafeBufferPointer<Float>) {
        precondition(flat.count == layout.totalCount, "loadWeights: \(flat.count) values, layout has \(layout.totalCount)")
        precondition(sharedWeights == nil, "loadWeights on a model running on host-shared read-only weights")
        guard let base = flat.baseAddress else { return }
        if let weights32 {
            weights32.pointer.update(from: base, count: flat.count)
        } else if let weights16 {
            Parallel.forChunks(flat.count, minimumChunk: 1 << 16) { range in
                Half.fromFloat(base + range.lowerBound, weights16.pointer + range.lowerBound, count: range.count)
            }
        }
    }

    /// Writes the working weights (float32, layout order).
    public func copyWeights(into flat: UnsafeMutableBufferPointer<Float>) {
        precondition(flat.count == layout.totalCount, "copyWeights: \(flat.count) values, layout has \(layout.totalCount)")
        guard let base = flat.baseAddress else { return }
        if let weights32 {
            base.update(from: weights32.pointer, count: flat.count)
        } else if let weights16 {
            Half.toFloat(weights16.pointer, base, count: flat.count)
        }
    }

    /// Bytes held by the working weights.
    public var weightBytes: Int { layout.totalCount * (precision == .fp32 ? 4 : 2) }

    /// Float32 view of the layer matrix at `offset` (a conversion into the layer scratch under
    /// fp16, valid until the next `layerWeights` call). A decoding step's prefill uses it where
    /// `HalfMatmul` does not run; training passes convert a whole layer at once there (`layerWeights`). The matrix lands where
    /// `layerWeights` puts it, so converting one during a pass over its layer rewrites the same
    /// values in place and leaves the layer's other views intact.
    ///
    /// Whole, not by panels: splitting a training GEMM into sgemm calls over cache-sized weight
    /// panels makes each call re-pack the whole activation operand (`tokens x in`), measured
    /// 4-30% slower per GEMM on the smollm2-135m shapes (2048 tokens, panels of 128-1024 rows,
    /// AVX-512 AMD EPYC), while converting whole costs under 1% of an fp16 step (perf).
    @inline(__always)
    func matrix(_ offset: Int, count: Int) -> UnsafeMutablePointer<Float> {
        if let weights32 { return weights32.pointer + offset }
        guard let layer = (0..<config.numHiddenLayers).first(where: { layout.groupRanges[1 + $0].contains(offset) }) else {
            preconditionFailure("matrix at \(offset) is not inside a decoder layer")
        }
        let start = offset - layout.groupRanges[1 + layer].lowerBound
        precondition(start + count <= layerScratch!.count, "matrix of \(count) values exceeds the conversion scratch")
        let scratch = layerScratch!.pointer + start
        Parallel.forChunks(count, minimumChunk: 1 << 16) { range in
            Half.toFloat(weights16!.pointer + offset + range.lowerBound, scratch + range.lowerBound, count: range.count)
        }
        return scratch
    }

    /// `y[tokens, out] = x[tokens, in] W^T + beta * y` for the layer matrix at `offset`
    /// (`[outFeatures, inFeatures]`). Under fp16 a few tokens (a decoding step) read the binary16
    /// rows directly (`HalfLinear`); more tokens go through `HalfMatmul` where it runs, or
    /// convert the matrix into scratch for sgemm.
    func linearForward(x: UnsafePointer<Float>, weight offset: Int, y: UnsafeMutablePointer<Float>,
                       tokens: Int, inFeatures: Int, outFeatures: Int, beta: Float = 0) {
        if let weights16, HalfLinear.useFor(tokens: tokens) {
            HalfLinear.forward(x: x, weight: weights16.pointer + offset, y: y, tokens: tokens,
                               inFeatures: inFeatures, outFeatures: outFeatures, beta: beta)
            return
        }
        if let weights16, HalfMatmul.enabled {
            Linear.forward(x: x, weight: .binary16(weights16.pointer + offset), y: y, tokens: tokens,
                           inFeatures: inFeatures, outFeatures: outFeatures, beta: beta)
            return
        }
        Linear.forward(x: x, weight: matrix(offset, count: outFeatures * inFeatures), y: y, tokens: tokens,
                       inFeatures: inFeatures, outFeatures: outFeatures, beta: beta)
    }

    /// Float32 rows `range` of the LM head (a conversion into the panel scratch under fp16; valid
    /// until the next `headPanel` call).
    ///
    /// Split over the threads: done on one, the other thread spun idle through it, 96 panels of
    /// 295K values per pass on smollm2-135m; the worker is awake from the previous GEMM, so the
    /// hand-off is cheap.
    @inline(__always)
    func headPanel(_ range: Range<Int>) -> UnsafePointer<Float> {
        let h = config.hiddenSize
        if let weights32 { return UnsafePointer(weights32.pointer + lmHeadOffset + range.lowerBound * h) }
        precondition(range.count <= LabelLogProbs.panelRows, "LM-head panel of \(range.count) rows exceeds the panel scratch")
        let source = weights16!.pointer + lmHeadOffset + range.lowerBound * h, scratch = headPanelScratch!.pointer
        conversionCounts.headPanels += 1
        Parallel.forChunks(range.count * h, minimumChunk: 1 << 16) { part in
            Half.toFloat(source + part.lowerBound, scratch + part.lowerBound, count: part.count)
        }
        return UnsafePointer(scratch)
    }

    /// Full logits `y[tokens, vocab] = x[tokens, H] head^T`, one vocabulary panel at a time.
    func lmHeadForward(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, tokens: Int) {
        let h = config.hiddenSize, vocab = config.vocabSize
        var start = 0
        while start < vocab {
            let panel = start..<min(vocab, start + LabelLogProbs.panelRows)
            Matmul.gemm(transposeA: false, transposeB: true, m: tokens, n: panel.count, k: h,
                        a: x, lda: h, b: headPanel(panel), ldb: h, beta: 0, c: y + start, ldc: vocab)
            start = panel.upperBound
        }
    }

    /// Float32 view of a norm weight `[H]` (valid until the next `normWeight` call).
    @inline(__always)
    func normWeight(_ offset: Int) -> UnsafeMutablePointer<Float> {
        if let weights32 { return weights32.pointer + offset }
        Half.toFloat(weights16!.pointer + offset, normScratch!.pointer, count: config.hiddenSize)
        return normScratch!.pointer
    }

    /// Float32 view of `count` values at `offset` (a bias or the q|k norm weights; a conversion
    /// into scratch under fp16, valid until the next `vector` call).
    @inline(__always)
    func vector(_ offset: Int, count: Int) -> UnsafeMutablePointer<Float> {
        if let weights32 { return weights32.pointer + offset }
        precondition(count <= vectorScratch!.count, "vector of \(count) values exceeds its scratch")
        Half.toFloat(weights16!.pointer + offset, vectorScratch!.pointer, count: count)
        return vectorScratch!.pointer
    }

    // MARK: - Arena

    /// The arena, grown only when this batch does not fit (a saving arena also runs
    /// non-saving forwards; a later backward then refuses, since `lastInput` is cleared).
    func prepareArena(_ input: StackInput, saving: Bool) -> ActivationArena {
        let arena = prepareArena(capacity(input, saving: saving))
        arena.use(rows: input.rows, seqLen: input.seqLen)
        return arena
    }

    /// The arena, grown only when it does not hold `needed` (the caller then points it at a batch with `use`).
    func prepareArena(_ needed: ActivationArena.Capacity) -> ActivationArena {
        if let arena, arena.capacity.holds(needed) { return arena }
        let capacity = arena.map { $0.capacity.union(needed) } ?? needed
        arena = nil  // release the old buffers before allocating the larger ones
        let fresh = ActivationArena(config: config, capacity: capacity, precision: precision, checkpointing: gradientCheckpointing)
        arena = fresh
        return fresh
    }

    func capacity(_ input: StackInput, saving: Bool) -> ActivationArena.Capacity {
        ActivationArena.Capacity(tokens: input.tokens, attentionScratch: input.attentionScratchCount(config),
                                 labelled: input.labelledIndices.count, saving: saving)
    }

    func ensureRotary(positions: Int) {
        if positions > rotary.maxPositions {
            rotary = config.rotary(maxPositions: positions)
        }
    }

    func validate(_ batch: TokenRows) {
        let n = batch.rows * batch.seqLen
        precondition(batch.rows > 0 && batch.seqLen > 0, "TokenRows: empty batch")
        precondition(batch.inputIds.count == n && batch.targetIds.count == n && batch.lengths.count == batch.rows,
                     "TokenRows: inputIds/targetIds must hold rows*seqLen = \(n) ids and lengths \(batch.rows) values")
        let vocab = Int32(config.vocabSize)
        precondition(batch.inputIds.allSatisfy { $0 >= 0 && $0 < vocab }, "TokenRows: an input id is outside 0..<\(vocab)")
        precondition(batch.targetIds.allSatisfy { $0 < vocab }, "TokenRows: a target id is >= vocab \(vocab)")
        if let limit = config.positionLimit, let longest = batch.lengths.max() {
            precondition(longest <= limit.tokens, "TokenRows: a row of \(longest) tokens; this config allows \(limit)")
        }
    }
}
