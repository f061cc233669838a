import XCTest
import TestSupport
@testable import Llama

/// The whole model's backward against central finite differences of its forward.
final class ModelGradientTests: XCTestCase {
    /// Tied and untied heads, GQA, padded rows: at 6 sampled coordinates of every tensor,
    /// |finite difference - analytic| <= 3e-3 + 2e-2 |analytic| (float32 forward, step 1e-2,
    /// loss accumulated in Double).
    func testGradientMatchesFiniteDifferences() throws {
        for tied in [true, false] {
            let config = ModelTestSupport.config(tied: tied)
            var weights = ModelTestSupport.weights(ParameterLayout(config: config), seed: tied ? 21 : 22)
            let model = try ModelTestSupport.model(config, weights: weights)
            let batch = ModelTestSupport.batch(vocab: config.vocabSize, seed: 23)
            var random = TestRandom(seed: 24)
            let w = batch.targetIds.map { $0 >= 0 ? random.uniform() : 0 }
            let (gradient, groups) = ModelTestSupport.gradient(model, batch, w)
            XCTAssertEqual(groups, Array((0...(config.numHiddenLayers + 1)).reversed()))
            XCTAssertTrue(gradient.allSatisfy(\.isFinite))
            let step: Float = 1e-2
            for entry in model.layout.entries {
                // The comparison is only meaningful where gradients are well above the tolerance.
                XCTAssertGreaterThan(maxAbs(Array(gradient[entry.range])), 3e-2, "tied \(tied) \(entry.name)")
                let samples = 6
                for s in 0..<samples {
                    let i = entry.offset + (s * 7919 + 13) % entry.count
                    let original = weights[i]
                    weights[i] = original + step
                    weights.withUnsafeBufferPointer { model.loadWeights($0) }
                    let plus = ModelTestSupport.weightedLogps(model, batch, w)
                    weights[i] = original - step
                    weights.withUnsafeBufferPointer { model.loadWeights($0) }
                    let minus = ModelTestSupport.weightedLogps(model, batch, w)
                    weights[i] = original
                    let numeric = (plus - minus) / (2 * Double(step))
                    let analytic = Double(gradient[i])
                    XCTAssertLessThanOrEqual(abs(numeric - analytic), 3e-3 + 2e-2 * abs(analytic),
                                             "tied \(tied) \(entry.name)[\(i - entry.offset)]: fd \(numeric) analytic \(analytic)")
                }
            }
            weights.withUnsafeBufferPointer { model.loadWeights($0) }
        }
    }

    /// backward accumulates (+=): two backward passes give twice the gradient; the untied
    /// head's gradient is in lm_head.weight and the embedding only gets its lookup rows.
    func testBackwardAccumulatesAndUntiedHeadIsSeparate() throws {
        let config = ModelTestSupport.config(tied: false)
        let model = try ModelTestSupport.model(config, weights: ModelTestSupport.weights(ParameterLayout(config: config), seed: 25))
        let batch = ModelTestSupport.batch(vocab: config.vocabSize, seed: 26)
        let w = batch.targetIds.map { $0 >= 0 ? Float(1) : 0 }
        let once = ModelTestSupport.gradient(model, batch, w).gradient
        _ = model.forward(batch, saveForBackward: true)
        var twice = once
        w.withUnsafeBufferPointer { dw in twice.withUnsafeMutableBufferPointer { model.backward(dTokenLogps: dw, gradients: $0, groupFinished: nil) } }
        XCTAssertLessThanOrEqual(maxAbsDifference(twice, once.map { 2 * $0 }), 1e-5 * max(1, maxAbs(once)))
        let embed = model.layout.entry("model.embed_tokens.weight")
        let used = Set(batch.inputIds.map(Int.init))
        for token in 0..<config.vocabSize where !used.contains(token) {
            let row = Array(once[(embed.offset + token * config.hiddenSize)..<(embed.offset + (token + 1) * config.hiddenSize)])
            XCTAssertEqual(maxAbs(row), 0, "unused token \(token) got an embedding gradient")
        }
        XCTAssertGreaterThan(maxAbs(Array(once[model.layout.entry("lm_head.weight").range])), 0)
    }

    /// Batches of different shapes reuse one arena: a smaller batch after a larger one gives the
    /// same log-probs and gradient as a fresh model (fp32 and fp16).
    func testArenaReuseAcrossShapes() throws {
        let config = ModelTestSupport.config(tied: true)
        let weights = ModelTestSupport.weights(ParameterLayout(config: config), seed: 27)
        let large = ModelTestSupport.batch(vocab: config.vocabSize, seed: 28)
        let small = ModelTestSupport.batch(vocab: config.vocabSize, seed: 29, lengths: [3, 4], seqLen: 4)
        for precision in Precision.allCases {
            let reused = try ModelTestSupport.model(config, precision: precision, weights: weights)
            let fresh = try ModelTestSupport.model(config, precision: precision, weights: weights)
            let wLarge = large.targetIds.map { $0 >= 0 ? Float(0.5) : 0 }
            let wSmall = small.targetIds.map { $0 >= 0 ? Float(1) : 0 }
            _ = ModelTestSupport.gradient(reused, large, wLarge)
            _ = reused.forward(large, saveForBackward: false)
            let (gradient, _) = ModelTestSupport.gradient(reused, small, wSmall)
            let (expected, _) = ModelTestSupport.gradient(fresh, small, wSmall)
            XCTAssertEqual(gradient, expected, "\(precision)")
            XCTAssertEqual(reused.forward(small, saveForBackward: false), fresh.forward(small, saveForBackward: false))
        }
    }
}
