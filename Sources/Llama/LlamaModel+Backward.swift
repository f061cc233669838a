import Kernels

extension LlamaModel {
    // MARK: - Public backward

    /// Accumulates (+=) dLoss/dParameters (flat float32, layout order) from dLoss/dTokenLogps
    /// `[rows*seqLen]` of the last `forward(_, saveForBackward: true)`.
    /// Calls `groupFinished(g)` as each parameter group's gradient becomes final: L+1, L, ..., 1, 0.
    /// With LoRA adapters attached, `gradients` is the adapter vector (`trainableCount`), no base
    /// gradient is computed, and the groups are the layers' adapters: L-1, ..., 0.
    /// `headRowsFinished(elements)` (full fine-tuning only) reports, as each vocabulary panel of
    /// the LM head's backward ends, the elements of `gradients` holding that panel's rows of the
    /// head's `[V, H]` gradient, in ascending order without gaps: nothing more is added to them
    /// until, with tied embeddings, the embedding backward at the very end (ZeRO-2 sends them on).
    public func backward(dTokenLogps: UnsafeBufferPointer<Float>, gradients: UnsafeMutableBufferPointer<Float>,
                         groupFinished: ((Int) -> Void)?, headRowsFinished: ((Range<Int>) -> Void)? = nil) {
        guard let batch = lastInput, let arena, arena.capacity.saving, arena.rows == batch.rows, arena.seqLen == batch.seqLen else {
            preconditionFailure("backward needs a preceding forward(_, saveForBackward: true)")
        }
        let c = config, n = batch.tokens, h = c.hiddenSize, L = c.numHiddenLayers
        precondition(dTokenLogps.count == batch.outputCount,
                     "backward: dTokenLogps has \(dTokenLogps.count) values, the batch's log-probs \(batch.outputCount)")
        precondition(gradients.count == trainableCount, "backward: gradients has \(gradients.count) values, the model trains \(trainableCount)")
        precondition(adapters?.enabled ?? true, "backward with the LoRA adapters switched off")
        let grad = gradients.baseAddress!
        let saved = arena.saved
        let dStream = arena.dStream!.pointer, dNormed = arena.dNormed!

        // LM head and final norm (group L + 1; a tied head's gradient lands in the embedding, group 0).
        let final = saved.restore(.layerInput, L)
        let finalNorm = normWeight(finalNormOffset)
        RMSNorm.apply(x: final, weight: finalNorm, rstd: arena.rstd(2 * L), output: arena.normed, tokens: n, hidden: h)
        let indices = batch.labelledIndices
        gatherRows(arena.normed, indices, into: arena.labelledHidden.pointer, width: h)
        let dLabelLogps = arena.dLabelLogps!.pointer
        for (m, p) in batch.outputIndices.enumerated() { dLabelLogps[m] = dTokenLogps[p] }
        // Vocabulary rows -> their elements of `gradients` (the head's [V, H] at lmHeadOffset).
        let headOffset = lmHeadOffset
        let panelFinished = adapters == nil ? headRowsFinished.map { report in
            { (rows: Range<Int>) in report((headOffset + rows.lowerBound * h)..<(headOffset + rows.upperBound * h)) }
        } : nil
        batch.labelledTargets.withUnsafeBufferPointer { t in
            LabelLogProbs.backwardPanelled(hidden: arena.labelledHidden.pointer, weightPanel: headPanel, targets: t.baseAddress!,
                                           logSumExp: arena.logSumExp.pointer, dLogps: dLabelLogps,
                                           dHidden: arena.dLabelledHidden!.pointer, dWeight: baseGradient(grad, lmHeadOffset),
                                           positions: indices.count, hiddenSize: h, vocab: c.vocabSize,
                                           scratch: arena.logitsChunk.pointer, panelFinished: panelFinished)
        }
        dNormed.update(repeating: 0, count: n * h)
        // Added, not copied: a shared prefix's last token is labelled once per completion.
        for (m, p) in indices.enumerated() {
            let source = arena.dLabelledHidden!.pointer + m * h, destination = dNormed + p * h
            for j in 0..<h { destination[j] += source[j] }
        }
        RMSNorm.backward(x: final, weight: normWeight(finalNormOffset), rstd: arena.rstd(2 * L), dOutput: dNormed,
                         dx: dStream, dWeight: baseGradientOrSink(grad, finalNormOffset), tokens: n, hidden: h, accumulate: false)
        let adapted = adapters != nil
        if !adapted { groupFinished?(L + 1) }

        // Decoder layers in reverse.
        for layer in stride(from: L - 1, through: 0, by: -1) {
            if saved.checkpointing { recomputeLayer(layer, batch, arena: arena) }
            layerBackward(layer, batch, arena: arena, gradients: grad)
            groupFinished?(adapted ? layer : 1 + layer)
        }
        if adapted { return }  // the embedding is frozen

        // Embedding (group 0).
        batch.inputIds.withUnsafeBufferPointer { ids in
            Embedding.backward(ids: ids.baseAddress!, dOutput: dStream, dTable: grad + embedOffset, tokens: n, hidden: h)
        }
        groupFinished?(0)
    }

    // MARK: - Layers

    /// Mirror of `layerForward`: on entry `dStream` is dLoss/d(layerInput[layer + 1]),
    /// on exit dLoss/d(layerInput[layer]); parameter gradients accumulate into `gradients`.
    /// Each saved kind is restored row by row inside a threaded pass that runs anyway (see
    /// `SavedActivations.rowRestore`), not by a pass of its own.
    func layerBackward(_ layer: Int, _ batch: StackInput, arena: ActivationArena, gradients grad: UnsafeMutablePointer<Float>) {
        let c = config, n = batch.tokens, h = c.hiddenSize, f = c.intermediateSize
        let qw = c.qDim, kw = c.kvDim
        let o = layerOffsets[layer], saved = arena.saved, normed = arena.normed
        let dStream = arena.dStream!.pointer, dNormed = arena.dNormed!
        let dMLPHidden = arena.dMLPHidden!.pointer  // shares memory with dNormed, dAttention and dQKV (see ActivationArena)
        let w = layerWeights(layer)

        // MLP block.
        let (gateUp, restoreGateUp) = saved.rowRestore(.gateUp, layer)
        // fp16: gateUp is a float32 copy of the saved slot, so its gradient can overwrite it (no
        // [N, 2F] buffer); fp32 restores the slot itself, which must survive a repeated backward.
        let dGateUp = arena.dGateUp?.pointer ?? gateUp
        SwiGLU.forward(gateUp: gateUp, output: arena.mlpHidden.pointer, rows: n, width: f, beforeRow: restoreGateUp)
        Linear.backward(x: arena.mlpHidden.pointer, weight: w.matrix(o.down), dy: dStream,
                        dx: dMLPHidden, dWeight: baseGradient(grad, o.down), tokens: n, inFeatures: f, outFeatures: h, overwriteInput: true)
        adapterBackward(layer, .downProj, x: arena.mlpHidden.pointer, dy: dStream, ldy: h, dx: dMLPHidden, gradients: grad, tokens: n)
        SwiGLU.backward(gateUp: gateUp, dOutput: dMLPHidden, dGateUp: dGateUp, rows: n, width: f)
        let (middle, restoreMiddle) = saved.rowRestore(.middle, layer)
        let postNorm = w[o.postNorm]
        RMSNorm.apply(x: middle, weight: postNorm, rstd: arena.rstd(2 * layer + 1), output: normed, tokens: n, hidden: h,
                      beforeRow: restoreMiddle)
        // gate_proj and up_proj as one stacked [2F, H] weight (adjacent in the layout).
        Linear.backward(x: normed, weight: w.matrix(o.gate), dy: dGateUp, dx: dNormed, dWeight: baseGradient(grad, o.gate),
                        tokens: n, inFeatures: h, outFeatures: 2 * f, overwriteInput: true)
        adaptersBackward(layer, [.gateProj, .upProj], x: normed, dx: dNormed, gradients: grad, tokens: n) { module in
            (UnsafePointer(module == .gateProj ? dGateUp : dGateUp + f), 2 * f)
        }
        // q|k|v's rows ride on this pass: their work memory held gate|up's gradient (fp16), now consumed.
        let (qkv, restoreQKV) = saved.rowRestore(.qkv, layer)
        RMSNorm.backward(x: middle, weight: postNorm, rstd: arena.rstd(2 * layer + 1), dOutput: dNormed,
                         dx: dStream, dWeight: baseGradientOrSink(grad, o.postNorm), tokens: n, hidden: h, accumulate: true,
                         beforeRow: restoreQKV)

        // Attention block (dStream is now dLoss/d(middle)). The attention output (o_proj's input)
        // was not saved: the attention backward recomputes it along with the softmax weights, so
        // o_proj's input gradient comes first and its weight gradients after (the same products).
        let attention = arena.attention, dAttention = arena.dAttention!
        let outputWeight = w.matrix(o.output)
        Linear.backward(x: attention, weight: outputWeight, dy: dStream, dx: dAttention, dWeight: nil,
                        tokens: n, inFeatures: qw, outFeatures: h, overwriteInput: true)
        adapterBackward(layer, .oProj, x: attention, dy: dStream, ldy: h, dx: dAttention, gradients: grad, tokens: n, part: .input)
        let qkvWidth = qw + 2 * kw
        let shape = Attention.Shape(rows: batch.rows, seqLen: batch.seqLen, heads: c.numAttentionHeads,
                                    kvHeads: c.numKeyValueHeads, headDim: c.headDim, inputStride: qkvWidth)
        let dQKV = arena.dQKV!, scratch = arena.attentionScratch!.pointer
        let workers = arena.attentionWorkers(batch)
        switch batch.structure {
        case .paddedRows(let lengths):
            lengths.withUnsafeBufferPointer { l in
                Attention.backwardRecomputingProbs(q: qkv, k: qkv + qw, v: qkv + qw + kw, lengths: l.baseAddress!, dOutput: dAttention,
                                                   dq: dQKV, dk: dQKV + qw, dv: dQKV + qw + kw, scratch: scratch, shape: shape,
                                                   output: attention, maxWorkers: workers)
            }
        case .sharedPrompt(let segments):
            segments.withUnsafeBufferPointer { s in
                SharedPromptAttention.backward(q: qkv, k: qkv + qw, v: qkv + qw + kw, segments: s.baseAddress!, dOutput: dAttention,
                                               dq: dQKV, dk: dQKV + qw, dv: dQKV + qw + kw, scratch: scratch, shape: shape,
                                               output: attention, maxWorkers: workers)
            }
        }
        Linear.backward(x: attention, weight: outputWeight, dy: dStream, dx: nil, dWeight: baseGradient(grad, o.output),
                        tokens: n, inFeatures: qw, outFeatures: h)
        adapterBackward(layer, .oProj, x: attention, dy: dStream, ldy: h, dx: dAttention, gradients: grad, tokens: n, part: .weights)
        // The key heads follow the query heads in each row: one pass rotates both back.
        rotate(dQKV, batch, heads: c.numAttentionHeads + c.numKeyValueHeads, stride: qkvWidth, backward: true)
        if let norm = o.queryKeyNorm {
            queryKeyNormBackward(dQKV, stride: qkvWidth, preNorm: saved.restore(.qkPreNorm, layer), tokens: n,
                                 weights: w[norm], dWeights: baseGradientOrSink(grad, norm))
        }
        if let bias = o.qkvBias, adapters == nil { biasBackward(dQKV, dBias: grad + bias, tokens: n, width: qkvWidth) }

        let (input, restoreInput) = saved.rowRestore(.layerInput, layer)
        let inputNorm = w[o.inputNorm]
        RMSNorm.apply(x: input, weight: inputNorm, rstd: arena.rstd(2 * layer), output: normed, tokens: n, hidden: h,
                      beforeRow: restoreInput)
        // q_proj, k_proj, v_proj as one stacked [Q + 2K, H] weight.
        Linear.backward(x: normed, weight: w.matrix(o.query), dy: dQKV, dx: dNormed, dWeight: baseGradient(grad, o.query),
                        tokens: n, inFeatures: h, outFeatures: qkvWidth, overwriteInput: true)
        adaptersBackward(layer, [.qProj, .kProj, .vProj], x: normed, dx: dNormed, gradients: grad, tokens: n) { module in
            (UnsafePointer(module == .qProj ? dQKV : module == .kProj ? dQKV + qw : dQKV + qw + kw), qkvWidth)
        }
        RMSNorm.backward(x: input, weight: inputNorm, rstd: arena.rstd(2 * layer), dOutput: dNormed,
                         dx: dStream, dWeight: baseGradientOrSink(grad, o.inputNorm), tokens: n, hidden: h, accumulate: true)
    }
}
