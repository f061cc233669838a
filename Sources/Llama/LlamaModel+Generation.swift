import Foundation
import Kernels

/// Keys and values of every layer for the positions generated so far (float32),
/// plus the scratch one decoding step needs.
final class KeyValueCache {
    let capacity: Int
    let keys: [FloatBuffer], values: [FloatBuffer]   // per layer `[capacity, kvDim]`
    let stream, normed, query, attention, gateUp, mlpHidden, rstd, probs: FloatBuffer
    let logits: FloatBuffer

    init(config c: LlamaConfig, capacity: Int, maxStep: Int) {
        self.capacity = capacity
        keys = (0..<c.numHiddenLayers).map { _ in FloatBuffer(count: capacity * c.kvDim) }
        values = (0..<c.numHiddenLayers).map { _ in FloatBuffer(count: capacity * c.kvDim) }
        stream = FloatBuffer(count: maxStep * c.hiddenSize)
        normed = FloatBuffer(count: maxStep * c.hiddenSize)
        query = FloatBuffer(count: maxStep * c.qDim)
        attention = FloatBuffer(count: maxStep * c.qDim)
        gateUp = FloatBuffer(count: maxStep * 2 * c.intermediateSize)
        mlpHidden = FloatBuffer(count: maxStep * c.intermediateSize)
        rstd = FloatBuffer(count: maxStep)
        probs = FloatBuffer(count: maxStep * capacity)
        logits = FloatBuffer(count: c.vocabSize)
    }
}

extension LlamaModel {
    // MARK: - Generation

    /// Continues `prompt` by up to `maxNewTokens` tokens with a KV cache, greedy or sampled
    /// (`sampling`, reproducible by seed). Returns the new tokens only; a stop token, when
    /// produced, is the last one returned. `onToken` sees each new token as it is chosen and
    /// returns false to stop. Prompt plus generated tokens never exceed `max_position_embeddings`,
    /// nor the config's `positionLimit` (a sliding window, dynamic RoPE).
    /// Logits holding a NaN or an infinity (overflowing weights) end the generation before a
    /// token is picked from them (greedy argmax of NaN is id 0, a NUL byte); `onNonFiniteLogits`
    /// is then told the position whose logits they were.
    public func generate(prompt: [Int32], maxNewTokens: Int, sampling: SamplingOptions, stopTokens: Set<Int32>,
                         onToken: ((Int32) -> Bool)?, onNonFiniteLogits: ((Int) -> Void)? = nil) -> [Int32] {
        precondition(!prompt.isEmpty, "generate: the prompt must hold at least one token")
        precondition(prompt.allSatisfy { $0 >= 0 && Int($0) < config.vocabSize }, "generate: a prompt id is outside the vocabulary")
        precondition(prompt.count <= config.positionLimit?.tokens ?? .max, "generate: the prompt exceeds \(config.positionLimit!)")
        let limit = min(config.maxPositionEmbeddings, config.positionLimit?.tokens ?? .max)
        let capacity = min(prompt.count + max(maxNewTokens, 0), max(limit, prompt.count))
        if maxNewTokens <= 0 || capacity <= prompt.count { return [] }
        ensureRotary(positions: capacity)
        let cache = KeyValueCache(config: config, capacity: capacity, maxStep: prompt.count)
        var random = SplitMix64(seed: sampling.seed)
        var generated: [Int32] = []
        decode(prompt, start: 0, cache: cache)
        // capacity = min(prompt + maxNewTokens, max positions): the last token is chosen, never fed.
        while prompt.count + generated.count < capacity {
            let logits = UnsafeBufferPointer(start: cache.logits.pointer, count: config.vocabSize)
            if !logits.allSatisfy(\.isFinite) {
                onNonFiniteLogits?(prompt.count + generated.count - 1)
                break
            }
            let token = pick(from: cache.logits.pointer, sampling: sampling, random: &random)
            generated.append(token)
            let keepGoing = onToken?(token) ?? true
            let position = prompt.count + generated.count - 1
            if !keepGoing || stopTokens.contains(token) || position + 1 >= capacity { break }
            decode([token], start: position, cache: cache)
        }
        return generated
    }

    /// Runs `tokens` at positions `start..<start+count` through the stack, appending their
    /// keys/values to the cache; leaves the last position's logits in `cache.logits`.
    func decode(_ tokens: [Int32], start: Int, cache: KeyValueCache) {
        let c = config, n = tokens.count, h = c.hiddenSize, f = c.intermediateSize, qw = c.qDim, kw = c.kvDim
        let stream = cache.stream.pointer, normed = cache.normed.pointer
        tokens.withUnsafeBufferPointer { ids in
            if let weights32 {
                Embedding.forward(ids: ids.baseAddress!, table: weights32.pointer + embedOffset, output: stream, tokens: n, hidden: h)
            } else {
                Embedding.forward(ids: ids.baseAddress!, table: weights16!.pointer + embedOffset, output: stream, tokens: n, hidden: h)
            }
        }
        let group = c.numAttentionHeads / c.numKeyValueHeads
        let keys = start + n
        for layer in 0..<c.numHiddenLayers {
            let o = layerOffsets[layer]
            RMSNorm.forward(x: stream, weight: normWeight(o.inputNorm), output: normed, rstd: cache.rstd.pointer,
                            tokens: n, hidden: h, eps: c.rmsNormEps)
            let keyRows = cache.keys[layer].pointer + start * kw, valueRows = cache.values[layer].pointer + start * kw
            linearForward(x: normed, weight: o.query, y: cache.query.pointer, tokens: n, inFeatures: h, outFeatures: qw)
            linearForward(x: normed, weight: o.key, y: keyRows, tokens: n, inFeatures: h, outFeatures: kw)
            linearForward(x: normed, weight: o.value, y: valueRows, tokens: n, inFeatures: h, outFeatures: kw)
            addAdapters(layer, [.qProj, .kProj, .vProj], x: normed, tokens: n) { module in
                module == .qProj ? (cache.query.pointer, qw) : (module == .kProj ? keyRows : valueRows, kw)
            }
            if let bias = o.qkvBias {
                let b = vector(bias, count: qw + 2 * kw)
                addBias(cache.query.pointer, b, tokens: n, width: qw)
                addBias(keyRows, b + qw, tokens: n, width: kw)
                addBias(valueRows, b + qw + kw, tokens: n, width: kw)
            }
            if let norm = o.queryKeyNorm {
                let w = vector(norm, count: 2 * c.headDim)
                HeadNorm.forward(x: cache.query.pointer, xStride: qw, y: cache.query.pointer, yStride: qw, weight: w,
                                 shape: .init(tokens: n, heads: c.numAttentionHeads, headDim: c.headDim), eps: c.rmsNormEps)
                HeadNorm.forward(x: keyRows, xStride: kw, y: keyRows, yStride: kw, weight: w + c.headDim,
                                 shape: .init(tokens: n, heads: c.numKeyValueHeads, headDim: c.headDim), eps: c.rmsNormEps)
            }
            rotary.forward(cache.query.pointer, rows: 1, seqLen: n, heads: c.numAttentionHeads, startPosition: start)
            rotary.forward(keyRows, rows: 1, seqLen: n, heads: c.numKeyValueHeads, startPosition: start)
            for head in 0..<c.numAttentionHeads {
                let g = head / group
                Attention.attendHead(
                    q: cache.query.pointer + head * c.headDim, queryStride: qw, queries: n, queryStart: start,
                    k: cache.keys[layer].pointer + g * c.headDim, v: cache.values[layer].pointer + g * c.headDim,
                    keyStride: kw, keys: keys, headDim: c.headDim, scale: 1 / Float(c.headDim).squareRoot(),
                    probs: cache.probs.pointer, probsStride: keys,
                    output: cache.attention.pointer + head * c.headDim, outputStride: qw)
            }
            linearForward(x: cache.attention.pointer, weight: o.output, y: stream, tokens: n, inFeatures: qw, outFeatures: h, beta: 1)
            addAdapter(layer, .oProj, x: cache.attention.pointer, y: stream, ldy: h, tokens: n)
            RMSNorm.forward(x: stream, weight: normWeight(o.postNorm), output: normed, rstd: cache.rstd.pointer,
                            tokens: n, hidden: h, eps: c.rmsNormEps)
            linearForward(x: normed, weight: o.gate, y: cache.gateUp.pointer, tokens: n, inFeatures: h, outFeatures: 2 * f)
            addAdapters(layer, [.gateProj, .upProj], x: normed, tokens: n) { module in
                (module == .gateProj ? cache.gateUp.pointer : cache.gateUp.pointer + f, 2 * f)
            }
            SwiGLU.forward(gateUp: cache.gateUp.pointer, output: cache.mlpHidden.pointer, rows: n, width: f)
            linearForward(x: cache.mlpHidden.pointer, weight: o.down, y: stream, tokens: n, inFeatures: f, outFeatures: h, beta: 1)
            addAdapter(layer, .downProj, x: cache.mlpHidden.pointer, y: stream, ldy: h, tokens: n)
        }
        let last = stream + (n - 1) * h
        RMSNorm.forward(x: last, weight: normWeight(finalNormOffset), output: normed, rstd: cache.rstd.pointer,
                        tokens: 1, hidden: h, eps: c.rmsNormEps)
        if let weights16, HalfLinear.useFor(tokens: 1) {
            // The head is the largest matrix a decoding step reads: binary16 rows, no panel copies.
            HalfLinear.forward(x: normed, weight: weights16.pointer + lmHeadOffset, y: cache.logits.pointer, tokens: 1,
                               inFeatures: h, outFeatures: c.vocabSize)
        } else {
            lmHeadForward(x: normed, y: cache.logits.pointer, tokens: 1)
        }
    }

    // MARK: - Choosing a token

    /// Greedy argmax (lowest id on ties) or temperature + top-p sampling.
    func pick(from logits: UnsafePointer<Float>, sampling: SamplingOptions, random: inout SplitMix64) -> Int32 {
        let vocab = config.vocabSize
        if sampling.temperature <= 0 {
            var best = 0
            for v in 1..<vocab where logits[v] > logits[best] { best = v }
            return Int32(best)
        }
        let temperature = Double(sampling.temperature)
        var maximum = -Double.infinity
        for v in 0..<vocab { maximum = max(maximum, Double(logits[v]) / temperature) }
        var weights = (0..<vocab).map { exp(Double(logits[$0]) / temperature - maximum) }
        let total = weights.reduce(0, +)
        for v in 0..<vocab { weights[v] /= total }
        // Nucleus: most likely first (ties by id, so the order is deterministic).
        let order = (0..<vocab).sorted { weights[$0] != weights[$1] ? weights[$0] > weights[$1] : $0 < $1 }
        let topP = Double(min(max(sampling.topP, 0), 1))
        var kept = 0, mass = 0.0
        while kept < vocab && (kept == 0 || mass < topP) { mass += weights[order[kept]]; kept += 1 }
        var u = random.nextUnit() * mass
        for i in 0..<kept {
            u -= weights[order[i]]
            if u < 0 { return Int32(order[i]) }
        }
        return Int32(order[kept - 1])
    }
}
