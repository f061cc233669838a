import Kernels

extension LlamaModel {
    // MARK: - Public forward

    /// Per-token log-probs `[rows*seqLen]` (float32 log-softmax at the target); 0 where target < 0.
    /// With `saveForBackward`, keeps what `backward` needs (trainable models only).
    public func forward(_ batch: TokenRows, saveForBackward: Bool) -> [Float] {
        validate(batch)
        return forward(StackInput(batch), saveForBackward: saveForBackward)
    }

    /// The same per-token log-probs as `forward(shared.pairedRows, ...)`, in its layout
    /// `[2B * pairedRows.seqLen]`, with each pair's shared prefix run once.
    public func forward(_ shared: SharedPromptRows, saveForBackward: Bool) -> [Float] {
        validate(shared.pairedRows)
        return forward(StackInput(shared, heads: config.numAttentionHeads), saveForBackward: saveForBackward)
    }

    func forward(_ input: StackInput, saveForBackward: Bool) -> [Float] {
        precondition(!saveForBackward || trainable, "forward(saveForBackward:) on a model made with trainable: false")
        if !saveForBackward, input.rows > 1, input.tokens > forwardChunkTokens, !(arena?.capacity.holds(capacity(input, saving: false)) ?? false) {
            // Rows are independent without backward: run them in chunks through a small arena
            // (layer-major, see LlamaModel+ChunkedForward.swift; one chunk after another in a
            // trainable model's saving arena, which keeps no whole-batch stream).
            let rowsPerChunk = max(1, forwardChunkTokens / input.seqLen)
            if arena?.capacity.saving ?? false {
                var result = [Float](repeating: 0, count: input.outputCount)
                for start in stride(from: 0, to: input.rows, by: rowsPerChunk) {
                    let chunk = input.rows(start..<min(input.rows, start + rowsPerChunk), heads: config.numAttentionHeads)
                    let part = forward(chunk, saveForBackward: false)
                    for p in chunk.outputIndices { result[p] = part[p] }
                }
                return result
            }
            return forwardInChunks(input, rowsPerChunk: rowsPerChunk)
        }
        let arena = prepareArena(input, saving: saveForBackward)
        runStack(input, arena: arena)

        // LM head + log-softmax only at the labelled positions.
        let c = config, h = c.hiddenSize
        let indices = input.labelledIndices
        gatherRows(arena.normed, indices, into: arena.labelledHidden.pointer, width: h)
        labelLogProbs(arena: arena, targets: input.labelledTargets)
        var result = [Float](repeating: 0, count: input.outputCount)
        for (m, p) in input.outputIndices.enumerated() { result[p] = arena.labelLogps.pointer[m] }
        lastInput = saveForBackward ? input : nil
        return result
    }

    /// `arena.labelLogps`/`logSumExp` of the gathered `arena.labelledHidden` rows.
    func labelLogProbs(arena: ActivationArena, targets: [Int32]) {
        let c = config, h = c.hiddenSize
        targets.withUnsafeBufferPointer { t in
            LabelLogProbs.forwardPanelled(hidden: arena.labelledHidden.pointer, weightPanel: headPanel, targets: t.baseAddress!,
                                          logps: arena.labelLogps.pointer, logSumExp: arena.logSumExp.pointer,
                                          positions: t.count, hiddenSize: h, vocab: c.vocabSize,
                                          scratch: arena.logitsChunk.pointer)
        }
    }

    /// Full logits `[rows*seqLen, vocab]` (for tests and evaluation; allocates the result).
    public func logits(_ batch: TokenRows) -> [Float] {
        validate(batch)
        let whole = StackInput(batch), c = config
        var out = [Float](repeating: 0, count: whole.tokens * c.vocabSize)
        forEachRowChunk(whole) { start, input, arena in
            out.withUnsafeMutableBufferPointer { o in
                lmHeadForward(x: arena.normed, y: o.baseAddress! + start * whole.seqLen * c.vocabSize, tokens: input.tokens)
            }
        }
        return out
    }

    /// Each position's sum of its logits over the vocabulary `[rows*seqLen]` (TRL's `logits/*`
    /// numerators), without the full logits: one `[chunk tokens, panelRows]` panel of them at a
    /// time (8 x 256 tokens x 49152 vocab: 4 MiB instead of 403 MB). Each sum is the float32
    /// sum in vocabulary order, from the same GEMMs as `logits`: equal to summing its rows.
    public func logitSums(_ batch: TokenRows) -> [Float] {
        validate(batch)
        let whole = StackInput(batch), h = config.hiddenSize, vocab = config.vocabSize
        var sums = [Float](repeating: 0, count: whole.tokens)
        var panelLogits: [Float] = []
        forEachRowChunk(whole) { start, input, arena in
            let n = input.tokens, first = start * whole.seqLen
            if panelLogits.count < n * min(vocab, LabelLogProbs.panelRows) { panelLogits = [Float](repeating: 0, count: n * min(vocab, LabelLogProbs.panelRows)) }
            var panelStart = 0
            while panelStart < vocab {
                let panel = panelStart..<min(vocab, panelStart + LabelLogProbs.panelRows), width = panel.count
                panelLogits.withUnsafeMutableBufferPointer { y in
                    // The same product `lmHeadForward` computes (m, n, k and operands), stored at ldc = width.
                    Matmul.gemm(transposeA: false, transposeB: true, m: n, n: width, k: h,
                                a: arena.normed, lda: h, b: headPanel(panel), ldb: h, beta: 0, c: y.baseAddress!, ldc: width)
                    for t in 0..<n {
                        var sum = sums[first + t]
                        for v in 0..<width { sum += y[t * width + v] }
                        sums[first + t] = sum
                    }
                }
                panelStart = panel.upperBound
            }
        }
        return sums
    }

    /// Runs the stack over `whole` and hands `body` each part's first row, input and arena (final
    /// normed states in `arena.normed`): whole rows in chunks when the arena does not already hold
    /// the batch (as `forward` without backward does), so a policy whose arena was sized for
    /// shared-prompt batches does not grow.
    func forEachRowChunk(_ whole: StackInput, _ body: (Int, StackInput, ActivationArena) -> Void) {
        lastInput = nil
        let fits = arena?.capacity.holds(capacity(whole, saving: false)) ?? false
        let rowsPerChunk = fits || whole.tokens <= forwardChunkTokens ? whole.rows : max(1, forwardChunkTokens / whole.seqLen)
        for start in stride(from: 0, to: whole.rows, by: rowsPerChunk) {
            let input = whole.rows(start..<min(whole.rows, start + rowsPerChunk), heads: config.numAttentionHeads)
            let arena = prepareArena(input, saving: false)
            runStack(input, arena: arena)
            body(start, input, arena)
        }
    }

    // MARK: - Layers

    /// Embedding, every decoder layer, final norm: leaves the final normed states in
    /// `arena.normed` and (when saving) every activation backward needs.
    func runStack(_ batch: StackInput, arena: ActivationArena) {
        let c = config, n = batch.rows * batch.seqLen, h = c.hiddenSize
        let saved = arena.saved
        ensureRotary(positions: batch.seqLen)
        embed(batch.inputIds, into: saved.buffer(.layerInput, 0))
        for layer in 0..<c.numHiddenLayers {
            layerForward(layer, batch, arena: arena)
        }
        let final = saved.buffer(.layerInput, c.numHiddenLayers)
        RMSNorm.forward(x: final, weight: normWeight(finalNormOffset), output: arena.normed,
                        rstd: arena.rstd(2 * c.numHiddenLayers), tokens: n, hidden: h, eps: c.rmsNormEps,
                        afterRow: saved.rowCommit(.layerInput, c.numHiddenLayers))
    }

    /// The embedding rows of `ids` `[N]` into `stream` `[N, H]`.
    func embed(_ ids: [Int32], into stream: UnsafeMutablePointer<Float>) {
        let n = ids.count, h = config.hiddenSize
        ids.withUnsafeBufferPointer { ids in
            if let weights32 {
                Embedding.forward(ids: ids.baseAddress!, table: weights32.pointer + embedOffset, output: stream, tokens: n, hidden: h)
            } else {
                Embedding.forward(ids: ids.baseAddress!, table: weights16!.pointer + embedOffset, output: stream, tokens: n, hidden: h)
            }
        }
    }

    /// One decoder layer: reads `layerInput[layer]`, writes `layerInput[layer + 1]`.
    /// `untilSaved` stops once everything backward reads is saved (a checkpointing recompute).
    /// `weights`: the layer's float32 views when the caller already has them (`layerWeights(layer)`).
    ///
    /// Each saved kind is committed by the threaded pass that reads it next (a norm, the
    /// rotation, SwiGLU; see `SavedActivations.rowCommit`), not by a pass of its own.
    func layerForward(_ layer: Int, _ batch: StackInput, arena: ActivationArena, untilSaved: Bool = false,
                      weights: LayerWeights? = nil) {
        let c = config, n = batch.tokens, h = c.hiddenSize, f = c.intermediateSize
        let qw = c.qDim, kw = c.kvDim
        let o = layerOffsets[layer], saved = arena.saved, normed = arena.normed
        let w = weights ?? layerWeights(layer)

        // Attention block: x_mid = x + o_proj(attention(rope(q), rope(k), v)) on rmsnorm(x).
        let input = saved.buffer(.layerInput, layer)
        RMSNorm.forward(x: input, weight: w[o.inputNorm], output: normed, rstd: arena.rstd(2 * layer),
                        tokens: n, hidden: h, eps: c.rmsNormEps, afterRow: saved.rowCommit(.layerInput, layer))
        // q | k | v per token from the stacked [q_proj; k_proj; v_proj] (adjacent in the layout).
        let qkvWidth = qw + 2 * kw
        let qkv = saved.buffer(.qkv, layer)
        Linear.forward(x: normed, weight: w.matrix(o.query), y: qkv, tokens: n, inFeatures: h, outFeatures: qkvWidth)
        addAdapters(layer, [.qProj, .kProj, .vProj], x: normed, tokens: n) { module in
            (module == .qProj ? qkv : module == .kProj ? qkv + qw : qkv + qw + kw, qkvWidth)
        }
        let query = qkv, key = qkv + qw, value = qkv + qw + kw
        if let bias = o.qkvBias { addBias(qkv, w[bias], tokens: n, width: qkvWidth) }
        if let norm = o.queryKeyNorm {
            queryKeyNormForward(qkv, stride: qkvWidth, preNorm: saved.buffer(.qkPreNorm, layer), tokens: n,
                                weights: w[norm])
            saved.commit(.qkPreNorm, layer)
        }
        // The key heads follow the query heads in each row: one pass rotates both.
        rotate(query, batch, heads: c.numAttentionHeads + c.numKeyValueHeads, stride: qkvWidth, backward: false,
               afterRow: saved.rowCommit(.qkv, layer))

        let shape = Attention.Shape(rows: batch.rows, seqLen: batch.seqLen, heads: c.numAttentionHeads,
                                    kvHeads: c.numKeyValueHeads, headDim: c.headDim, inputStride: qkvWidth)
        // Neither the softmax weights (they live only in the scratch) nor the output is kept:
        // backward recomputes both (no [rows, heads, T, T] tensor, no saved [N, Q]).
        let attention = arena.attention, scratch = arena.attentionScratch!.pointer
        let workers = arena.attentionWorkers(batch)
        switch batch.structure {
        case .paddedRows(let lengths):
            lengths.withUnsafeBufferPointer { l in
                Attention.forwardDiscardingProbs(q: query, k: key, v: value, lengths: l.baseAddress!, output: attention,
                                                 scratch: scratch, shape: shape, maxWorkers: workers)
            }
        case .sharedPrompt(let segments):
            segments.withUnsafeBufferPointer { s in
                SharedPromptAttention.forward(q: query, k: key, v: value, segments: s.baseAddress!, output: attention,
                                              scratch: scratch, shape: shape, maxWorkers: workers)
            }
        }

        // In place when the middle stream shares the input's memory (see `SavedActivations`).
        let middle = saved.buffer(.middle, layer)
        if middle != input { middle.update(from: input, count: n * h) }
        Linear.forward(x: attention, weight: w.matrix(o.output), y: middle,
                       tokens: n, inFeatures: qw, outFeatures: h, beta: 1)
        addAdapter(layer, .oProj, x: attention, y: middle, ldy: h, tokens: n)

        // MLP block: x_out = x_mid + down(silu(gate(rmsnorm(x_mid))) * up(rmsnorm(x_mid))).
        RMSNorm.forward(x: middle, weight: w[o.postNorm], output: normed, rstd: arena.rstd(2 * layer + 1),
                        tokens: n, hidden: h, eps: c.rmsNormEps, afterRow: saved.rowCommit(.middle, layer))
        let gateUp = saved.buffer(.gateUp, layer)
        Linear.forward(x: normed, weight: w.matrix(o.gate), y: gateUp, tokens: n, inFeatures: h, outFeatures: 2 * f)
        addAdapters(layer, [.gateProj, .upProj], x: normed, tokens: n) { module in (module == .gateProj ? gateUp : gateUp + f, 2 * f) }
        if untilSaved {
            saved.commit(.gateUp, layer)
            return
        }
        SwiGLU.forward(gateUp: gateUp, output: arena.mlpHidden.pointer, rows: n, width: f, afterRow: saved.rowCommit(.gateUp, layer))

        let next = saved.buffer(.layerInput, layer + 1)
        if next != middle { next.update(from: middle, count: n * h) }
        Linear.forward(x: arena.mlpHidden.pointer, weight: w.matrix(o.down), y: next,
                       tokens: n, inFeatures: f, outFeatures: h, beta: 1)
        addAdapter(layer, .downProj, x: arena.mlpHidden.pointer, y: next, ldy: h, tokens: n)
    }

    // MARK: - Helpers

    /// Rotary embedding (or its transpose) of q or k columns, at the batch's positions;
    /// `afterRow` (forward only) as in `Rotary.forward`.
    func rotate(_ x: UnsafeMutablePointer<Float>, _ batch: StackInput, heads: Int, stride: Int, backward: Bool,
                afterRow: ((Int) -> Void)? = nil) {
        precondition(!backward || afterRow == nil, "rotate: afterRow is for the forward rotation")
        if let positions = batch.positions {
            positions.withUnsafeBufferPointer { p in
                if backward {
                    rotary.backward(x, positions: p.baseAddress!, tokens: batch.tokens, heads: heads, stride: stride)
                } else {
                    rotary.forward(x, positions: p.baseAddress!, tokens: batch.tokens, heads: heads, stride: stride, afterRow: afterRow)
                }
            }
        } else if backward {
            rotary.backward(x, rows: batch.rows, seqLen: batch.seqLen, heads: heads, stride: stride)
        } else {
            rotary.forward(x, rows: batch.rows, seqLen: batch.seqLen, heads: heads, stride: stride, afterRow: afterRow)
        }
    }

    /// `destination[m, :] = source[indices[m], :]`.
    func gatherRows(_ source: UnsafePointer<Float>, _ indices: [Int], into destination: UnsafeMutablePointer<Float>, width: Int) {
        for (m, p) in indices.enumerated() { (destination + m * width).update(from: source + p * width, count: width) }
    }
}
