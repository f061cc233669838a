import TestSupport
@testable import Llama

/// Small shapes and random weights shared by the model tests.
enum ModelTestSupport {
    /// A miniature of the `tiny` preset: GQA 4/2 heads of width 4, 2 layers, vocab 23.
    static func config(tied: Bool, layers: Int = 2) -> LlamaConfig {
        var c = LlamaConfig(hiddenSize: 16, intermediateSize: 24, numHiddenLayers: layers, numAttentionHeads: 4,
                            numKeyValueHeads: 2, vocabSize: 23, rmsNormEps: 1e-5, ropeTheta: 10000,
                            tieWordEmbeddings: tied, maxPositionEmbeddings: 32, eosTokenId: 22)
        c.headDim = 4
        return c
    }

    /// Random weights in layout order: norms near 1, matrices uniform in ±scale.
    static func weights(_ layout: ParameterLayout, seed: UInt64, scale: Float = 0.35) -> [Float] {
        var random = TestRandom(seed: seed)
        var flat = [Float](repeating: 0, count: layout.totalCount)
        for entry in layout.entries {
            for i in entry.range {
                flat[i] = entry.isNorm ? 1 + random.uniform(0.2) : random.uniform(entry.name.contains("embed") ? 1 : scale)
            }
        }
        return flat
    }

    /// Three right-padded rows (lengths 6, 4, 2 of seqLen 6): a prompt of 1-2 tokens without
    /// targets, then targets on the rest of each row, none on padding.
    static func batch(vocab: Int, seed: UInt64, lengths: [Int] = [6, 4, 2], seqLen: Int = 6) -> TokenRows {
        var random = TestRandom(seed: seed)
        let rows = lengths.count
        var inputs = [Int32](repeating: 0, count: rows * seqLen), targets = [Int32](repeating: -1, count: rows * seqLen)
        for r in 0..<rows {
            for t in 0..<seqLen { inputs[r * seqLen + t] = Int32(random.next() % UInt64(vocab)) }
            for t in min(1, lengths[r] - 1)..<lengths[r] { targets[r * seqLen + t] = Int32(random.next() % UInt64(vocab)) }
        }
        return TokenRows(rows: rows, seqLen: seqLen, inputIds: inputs, targetIds: targets, lengths: lengths)
    }

    static func model(_ config: LlamaConfig, precision: Precision = .fp32, trainable: Bool = true, weights: [Float]) throws -> LlamaModel {
        let model = try LlamaModel(config: config, precision: precision, trainable: trainable)
        weights.withUnsafeBufferPointer { model.loadWeights($0) }
        return model
    }

    /// Σ w·logps in Double.
    static func weightedLogps(_ model: LlamaModel, _ batch: TokenRows, _ w: [Float]) -> Double {
        let logps = model.forward(batch, saveForBackward: false)
        var s = 0.0
        for i in logps.indices { s += Double(logps[i]) * Double(w[i]) }
        return s
    }

    /// Gradient of Σ w·logps, accumulated into zeros; records the group order.
    static func gradient(_ model: LlamaModel, _ batch: TokenRows, _ w: [Float]) -> (gradient: [Float], groups: [Int]) {
        _ = model.forward(batch, saveForBackward: true)
        var gradient = [Float](repeating: 0, count: model.layout.totalCount)
        var groups: [Int] = []
        w.withUnsafeBufferPointer { dw in
            gradient.withUnsafeMutableBufferPointer { g in
                model.backward(dTokenLogps: dw, gradients: g) { groups.append($0) }
            }
        }
        return (gradient, groups)
    }
}
