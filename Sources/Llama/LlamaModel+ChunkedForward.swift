import Kernels

// A forward without backward (the frozen reference's) over more than `forwardChunkTokens` tokens
// runs whole rows in chunks through a small arena, layer-major: every chunk passes a layer before
// any chunk starts the next one, and each vocabulary panel of the LM head multiplies every chunk's
// labelled positions before the next panel. Why: under fp16 a layer's weights (3.5M values on
// smollm2-135m) and an LM-head panel are converted to float32 once per forward, not once per chunk
// (each conversion is also a threaded hand-off).
//
// Memory: the arena keeps the whole batch's residual stream [N, H] in float32 (N = all rows'
// tokens) and everything else at chunk size; the LM head's inputs (the labelled positions' final
// states) are gathered into the gate|up work buffer, idle once the stack has run.
//
// Exact: each chunk runs the very kernel calls a forward of that chunk alone runs (same shapes,
// same operand values), and the LM head multiplies each chunk's positions in the groups of
// `LabelLogProbs.panelPositions` the chunk alone would: the log-probs are bit-identical to
// running the chunks one after another.

extension LlamaModel {
    /// Per-token log-probs of `input` (layout of `forward`), rows in chunks of `rowsPerChunk`, layer-major.
    func forwardInChunks(_ input: StackInput, rowsPerChunk: Int) -> [Float] {
        let c = config, L = c.numHiddenLayers
        let starts = Array(stride(from: 0, to: input.rows, by: rowsPerChunk))
        let chunks = starts.map { input.rows($0..<min(input.rows, $0 + rowsPerChunk), heads: c.numAttentionHeads) }
        var needed = chunks.dropFirst().reduce(capacity(chunks[0], saving: false)) { $0.union(capacity($1, saving: false)) }
        needed.streamTokens = input.tokens
        let arena = prepareArena(needed)
        lastInput = nil
        ensureRotary(positions: input.seqLen)
        func use(_ k: Int) { arena.use(rows: chunks[k].rows, seqLen: chunks[k].seqLen, firstToken: starts[k] * input.seqLen) }

        use(0)  // chunk 0's stream starts at the whole stream's first token
        embed(input.inputIds, into: arena.saved.buffer(.layerInput, 0))
        for layer in 0..<L {
            let weights = layerWeights(layer)
            for k in chunks.indices {
                use(k)
                layerForward(layer, chunks[k], arena: arena, weights: weights)
            }
        }
        var result = [Float](repeating: 0, count: input.outputCount)
        var first = 0
        while first < chunks.count {
            first = labelLogProbs(chunks: chunks, from: first, arena: arena, use: use, into: &result)
        }
        return result
    }

    /// Final norm and LM head of chunks `from...` (as many as the idle memory holds the labelled
    /// states of, at least one): writes their log-probs into `result`, returns the next chunk.
    private func labelLogProbs(chunks: [StackInput], from first: Int, arena: ActivationArena, use: (Int) -> Void,
                               into result: inout [Float]) -> Int {
        let c = config, h = c.hiddenSize, L = c.numHiddenLayers
        let idle = arena.idleAfterStack
        var end = first, positions = 0
        while end < chunks.count, (positions + chunks[end].labelledIndices.count) * h <= idle.count {
            positions += chunks[end].labelledIndices.count
            end += 1
        }
        // A chunk whose states alone exceed the idle memory uses the arena's own buffer (sized for one chunk).
        let hidden = end > first ? idle.baseAddress! : arena.labelledHidden.pointer
        if end == first {
            end = first + 1
            positions = chunks[first].labelledIndices.count
        }
        let finalNorm = normWeight(finalNormOffset)
        var segments: [Range<Int>] = [], targets: [Int32] = [], outputs: [Int] = []
        for k in first..<end {
            use(k)
            let chunk = chunks[k], start = segments.last?.upperBound ?? 0
            RMSNorm.forward(x: arena.saved.buffer(.layerInput, L), weight: finalNorm, output: arena.normed,
                            rstd: arena.rstd(2 * L), tokens: chunk.tokens, hidden: h, eps: c.rmsNormEps)
            gatherRows(arena.normed, chunk.labelledIndices, into: hidden + start * h, width: h)
            segments.append(start..<(start + chunk.labelledIndices.count))
            targets += chunk.labelledTargets
            outputs += chunk.outputIndices
        }
        if positions == 0 { return end }
        var logps = [Float](repeating: 0, count: positions), logSumExp = logps
        targets.withUnsafeBufferPointer { t in
            logps.withUnsafeMutableBufferPointer { lp in
                logSumExp.withUnsafeMutableBufferPointer { lse in
                    LabelLogProbs.forwardPanelled(hidden: hidden, weightPanel: headPanel, targets: t.baseAddress!,
                                                  logps: lp.baseAddress!, logSumExp: lse.baseAddress!, positions: positions,
                                                  hiddenSize: h, vocab: c.vocabSize, scratch: arena.logitsChunk.pointer,
                                                  segments: segments)
                }
            }
        }
        for (m, p) in outputs.enumerated() { result[p] = logps[m] }
        return end
    }
}
