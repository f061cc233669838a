import XCTest
import TestSupport
import Kernels
@testable import Llama

/// LoRA in the model: the adapted forward is the merged model's, adapter gradients follow from
/// the merged model's weight gradient by the chain rule, the reference switch gives the base model.
final class LoRAModelTests: XCTestCase {
    static func adapters(_ config: LlamaConfig, rank: Int = 2, targets: [LoRAModule] = LoRAModule.allCases,
                         seed: UInt64) throws -> (LoRAAdapters, [Float]) {
        let adapters = try LoRAAdapters(model: config, config: LoRAConfig(rank: rank, alpha: 3, targets: targets))
        var random = TestRandom(seed: seed)
        let values = random.array(adapters.layout.totalCount, scale: 0.3)  // B nonzero too
        values.withUnsafeBufferPointer { adapters.load($0) }
        return (adapters, values)
    }

    /// PEFT's initialisation: A within +-1/sqrt(in) and not zero, B zero, so the adapted model
    /// computes exactly the base model's log-probs.
    func testInitialAdaptersLeaveTheBaseModel() throws {
        let config = ModelTestSupport.config(tied: false)
        let weights = ModelTestSupport.weights(ParameterLayout(config: config), seed: 1)
        let base = try ModelTestSupport.model(config, weights: weights)
        let adapted = try ModelTestSupport.model(config, weights: weights)
        let adapters = try LoRAAdapters(model: config, config: LoRAConfig(rank: 4))
        let initial = LoRAAdapters.initialWeights(layout: adapters.layout, seed: 7)
        for entry in adapters.layout.entries {
            let values = Array(initial[entry.range])
            if entry.isB {
                XCTAssertEqual(maxAbs(values), 0, entry.name)
            } else {
                XCTAssertLessThanOrEqual(maxAbs(values), 1 / Float(entry.shape[1]).squareRoot(), entry.name)
                XCTAssertGreaterThan(maxAbs(values), 0.5 / Float(entry.shape[1]).squareRoot(), entry.name)
            }
        }
        initial.withUnsafeBufferPointer { adapters.load($0) }
        adapted.attach(adapters)
        let batch = ModelTestSupport.batch(vocab: config.vocabSize, seed: 2)
        XCTAssertEqual(adapted.forward(batch, saveForBackward: false), base.forward(batch, saveForBackward: false))
        XCTAssertEqual(adapted.trainableCount, adapters.layout.totalCount)
        XCTAssertEqual(adapters.layout.entries.first?.name, "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight")
    }

    /// Adapted forward (log-probs, logits, greedy generation) = the merged model's, fp32, for
    /// all seven targets and for a subset; Qwen2-style q/k/v biases included.
    func testAdaptedForwardEqualsMergedModel() throws {
        for (targets, bias) in [(LoRAModule.allCases, false), ([LoRAModule.qProj, .vProj, .downProj], true)] {
            var config = ModelTestSupport.config(tied: true)
            if bias { config.modelType = "qwen2" }
            let weights = ModelTestSupport.weights(ParameterLayout(config: config), seed: 3)
            let adapted = try ModelTestSupport.model(config, weights: weights)
            let (adapters, _) = try Self.adapters(config, targets: targets, seed: 4)
            adapted.attach(adapters)
            let merged = try ModelTestSupport.model(config, weights: adapted.mergedWeights())
            XCTAssertGreaterThan(maxAbsDifference(adapted.mergedWeights(), weights), 0.01)
            let batch = ModelTestSupport.batch(vocab: config.vocabSize, seed: 5)
            let a = adapted.forward(batch, saveForBackward: false), m = merged.forward(batch, saveForBackward: false)
            XCTAssertLessThanOrEqual(maxAbsDifference(a, m), 2e-6 * max(1, maxAbs(m)), "targets \(targets)")
            let la = adapted.logits(batch), lm = merged.logits(batch)
            XCTAssertLessThanOrEqual(maxAbsDifference(la, lm), 2e-6 * max(1, maxAbs(lm)))
            let prompt: [Int32] = [3, 9, 1]
            XCTAssertEqual(adapted.generate(prompt: prompt, maxNewTokens: 6, sampling: .greedy, stopTokens: [], onToken: nil),
                           merged.generate(prompt: prompt, maxNewTokens: 6, sampling: .greedy, stopTokens: [], onToken: nil))
            // Switched off, the adapted model is the base model, bit for bit.
            let base = try ModelTestSupport.model(config, weights: weights)
            XCTAssertEqual(adapted.forwardWithoutAdapters(batch), base.forward(batch, saveForBackward: false))
        }
    }

    /// dL/dA = s B^T G and dL/dB = s G A^T, G the merged model's gradient of that weight
    /// (chain rule through W' = W + s B A): within 1e-5 of max|ref|; the groups are the layers'
    /// adapters, last layer first; no base gradient is needed.
    func testAdapterGradientsFollowTheMergedGradient() throws {
        let config = ModelTestSupport.config(tied: false)
        let weights = ModelTestSupport.weights(ParameterLayout(config: config), seed: 6)
        let adapted = try ModelTestSupport.model(config, weights: weights)
        let (adapters, values) = try Self.adapters(config, seed: 7)
        adapted.attach(adapters)
        let merged = try ModelTestSupport.model(config, weights: adapted.mergedWeights())
        let batch = ModelTestSupport.batch(vocab: config.vocabSize, seed: 8)
        var random = TestRandom(seed: 9)
        let w = batch.targetIds.map { $0 >= 0 ? random.uniform() : 0 }
        let (full, _) = ModelTestSupport.gradient(merged, batch, w)
        let (lora, groups) = Self.adapterGradient(adapted, batch, w)
        XCTAssertEqual(groups, Array((0..<config.numHiddenLayers).reversed()))
        let expected = Self.chainRule(full, layout: merged.layout, adapters: adapters, values: values, config: config)
        XCTAssertLessThanOrEqual(maxAbsDifference(lora, expected), 1e-5 * maxAbs(expected))
        for entry in adapters.layout.entries { XCTAssertGreaterThan(maxAbs(Array(lora[entry.range])), 1e-3, entry.name) }
    }

    /// The adapter gradient against central finite differences of the forward (float32, step 1e-2).
    func testAdapterGradientMatchesFiniteDifferences() throws {
        let config = ModelTestSupport.config(tied: true)
        let model = try ModelTestSupport.model(config, weights: ModelTestSupport.weights(ParameterLayout(config: config), seed: 10))
        var (adapters, values) = try Self.adapters(config, seed: 11)
        model.attach(adapters)
        let batch = ModelTestSupport.batch(vocab: config.vocabSize, seed: 12)
        var random = TestRandom(seed: 13)
        let w = batch.targetIds.map { $0 >= 0 ? random.uniform() : 0 }
        let (gradient, _) = Self.adapterGradient(model, batch, w)
        let step: Float = 1e-2
        for entry in adapters.layout.entries {
            for s in 0..<3 {
                let i = entry.offset + (s * 7919 + 5) % entry.count
                let original = values[i]
                values[i] = original + step
                values.withUnsafeBufferPointer { adapters.load($0) }
                let plus = ModelTestSupport.weightedLogps(model, batch, w)
                values[i] = original - step
                values.withUnsafeBufferPointer { adapters.load($0) }
                let minus = ModelTestSupport.weightedLogps(model, batch, w)
                values[i] = original
                values.withUnsafeBufferPointer { adapters.load($0) }
                let numeric = (plus - minus) / (2 * Double(step)), analytic = Double(gradient[i])
                XCTAssertLessThanOrEqual(abs(numeric - analytic), 3e-3 + 2e-2 * abs(analytic), "\(entry.name): fd \(numeric) vs \(analytic)")
            }
        }
    }

    /// A base-model forward between the policy's forward and backward (the DPO reference) leaves
    /// the backward unchanged, bit for bit (it runs in its own arena); under fp16 too.
    func testReferenceForwardBetweenForwardAndBackward() throws {
        let config = ModelTestSupport.config(tied: true)
        let weights = ModelTestSupport.weights(ParameterLayout(config: config), seed: 14)
        for precision in Precision.allCases {
            let model = try ModelTestSupport.model(config, precision: precision, weights: weights)
            let (adapters, _) = try Self.adapters(config, seed: 15)
            model.attach(adapters)
            let base = try ModelTestSupport.model(config, precision: precision, trainable: false, weights: weights)
            let batch = ModelTestSupport.batch(vocab: config.vocabSize, seed: 16)
            let w = batch.targetIds.map { $0 >= 0 ? Float(1) : 0 }
            let (plain, _) = Self.adapterGradient(model, batch, w)
            _ = model.forward(batch, saveForBackward: true)
            XCTAssertEqual(model.forwardWithoutAdapters(batch), base.forward(batch, saveForBackward: false), "\(precision)")
            var interleaved = [Float](repeating: 0, count: model.trainableCount)
            w.withUnsafeBufferPointer { d in interleaved.withUnsafeMutableBufferPointer { model.backward(dTokenLogps: d, gradients: $0, groupFinished: nil) } }
            XCTAssertEqual(interleaved, plain, "\(precision)")
        }
    }

    /// fp16 base weights with fp32 adapters: log-probs and adapter gradients near the fp32 run's.
    func testHalfPrecisionBaseIsCloseToFloat() throws {
        let config = ModelTestSupport.config(tied: true)
        let weights = ModelTestSupport.weights(ParameterLayout(config: config), seed: 17)
        let batch = ModelTestSupport.batch(vocab: config.vocabSize, seed: 18)
        let w = batch.targetIds.map { $0 >= 0 ? Float(1) : 0 }
        var results: [(logps: [Float], gradient: [Float])] = []
        for precision in [Precision.fp32, .fp16] {
            let model = try ModelTestSupport.model(config, precision: precision, weights: weights)
            model.attach(try Self.adapters(config, seed: 19).0)
            results.append((model.forward(batch, saveForBackward: false), Self.adapterGradient(model, batch, w).gradient))
        }
        XCTAssertLessThanOrEqual(maxAbsDifference(results[0].logps, results[1].logps), 2e-2 * maxAbs(results[0].logps))
        XCTAssertLessThanOrEqual(maxAbsDifference(results[0].gradient, results[1].gradient), 2e-2 * maxAbs(results[0].gradient))
    }

    /// Settings the model cannot take are refused with the reason.
    func testBadSettingsAreRefused() throws {
        let config = ModelTestSupport.config(tied: true)  // H 16, F 24, q 16, kv 8
        func message(_ lora: LoRAConfig) -> String {
            do { _ = try LoRAAdapters(model: config, config: lora); return "" } catch { return "\(error)" }
        }
        XCTAssertTrue(message(LoRAConfig(rank: 0)).contains("must be > 0"))
        XCTAssertTrue(message(LoRAConfig(rank: 9)).contains("exceeds k_proj's smaller dimension 8"))
        XCTAssertEqual(message(LoRAConfig(rank: 9, targets: [.qProj, .oProj, .gateProj])), "")
        XCTAssertEqual(message(LoRAConfig(rank: 2, dropout: 0.1)), "", "dropout is no obstacle to inference")
        XCTAssertThrowsError(try LoRAConfig(rank: 2, dropout: 0.1).validateForTraining(config)) {
            XCTAssertTrue("\($0)".contains("dropout 0.1 is not supported for training"))
        }
        XCTAssertThrowsError(try LoRAConfig.parseTargets("q_proj,wq")) { XCTAssertTrue("\($0)".contains("'wq' is not a module")) }
        XCTAssertEqual(try LoRAConfig.parseTargets("v_proj, q_proj"), [.vProj, .qProj])
    }

    // MARK: - Helpers

    static func adapterGradient(_ model: LlamaModel, _ batch: TokenRows, _ w: [Float]) -> (gradient: [Float], groups: [Int]) {
        _ = model.forward(batch, saveForBackward: true)
        var gradient = [Float](repeating: 0, count: model.trainableCount)
        var groups: [Int] = []
        w.withUnsafeBufferPointer { dw in
            gradient.withUnsafeMutableBufferPointer { g in model.backward(dTokenLogps: dw, gradients: g) { groups.append($0) } }
        }
        return (gradient, groups)
    }

    /// The adapter gradient implied by the merged model's weight gradient `full` (Double sums).
    static func chainRule(_ full: [Float], layout: ParameterLayout, adapters: LoRAAdapters, values: [Float],
                          config: LlamaConfig) -> [Float] {
        var out = [Float](repeating: 0, count: adapters.layout.totalCount)
        let r = adapters.config.rank, s = Double(adapters.config.scale)
        for entry in adapters.layout.entries where !entry.isB {
            let f = entry.module.features(config)
            let pair = adapters.layout.pair(layer: entry.layer, module: entry.module)!
            let g = layout.entry(entry.baseName).offset
            for k in 0..<r {
                for i in 0..<f.in {  // dA[k, i] = s sum_o B[o, k] G[o, i]
                    var sum = 0.0
                    for o in 0..<f.out { sum += Double(values[pair.b + o * r + k]) * Double(full[g + o * f.in + i]) }
                    out[pair.a + k * f.in + i] = Float(s * sum)
                }
            }
            for o in 0..<f.out {
                for k in 0..<r {  // dB[o, k] = s sum_i G[o, i] A[k, i]
                    var sum = 0.0
                    for i in 0..<f.in { sum += Double(full[g + o * f.in + i]) * Double(values[pair.a + k * f.in + i]) }
                    out[pair.b + o * r + k] = Float(s * sum)
                }
            }
        }
        return out
    }
}
