import Distributed
import Foundation
import Llama
import Preference
import TestSupport
import XCTest

@testable import DPOTools
@testable import Training

/// `DPOStep` with LoRA adapters: the step's adapter gradient is the chain rule of the full
/// fine-tuning gradient of the merged model whose reference is the base (the adapters-off
/// switch is the reference), for every loss, with and without prompt sharing, over two micro-batches.
final class LoRAStepTests: XCTestCase {
    static var config: LlamaConfig {
        var c = TrainerSandbox.tinyConfig
        c.numHiddenLayers = 2
        return c
    }

    struct Setup {
        let base: [Float]
        let adapters: LoRAAdapters
        let values: [Float]
        let batches: [PreferenceBatch]
    }

    static func setup() throws -> Setup {
        let config = Self.config
        let base = WeightInitializer(seed: 1, standardDeviation: 0.05).weights(for: config)
        let adapters = try LoRAAdapters(model: config, config: LoRAConfig(rank: 4, alpha: 8))
        var random = TestRandom(seed: 2)
        let values = random.array(adapters.layout.totalCount, scale: 0.1)
        let (pairs, padding) = try DPOStepBenchmark.syntheticPairs(count: 4, promptLength: 6, completionLength: 5)
        let batches = [PreferenceBatch(pairs: pairs, indices: [0, 1], paddingId: padding),
                       PreferenceBatch(pairs: pairs, indices: [2, 3], paddingId: padding)]
        return Setup(base: base, adapters: adapters, values: values, batches: batches)
    }

    static func step(policy: LlamaModel, reference: ReferenceLogps, master: [Float], loss: PreferenceLossOptions,
                     sharePrompt: Bool, precision: Precision = .fp32) throws -> DPOStep {
        let options = DPOStep.Options(loss: loss, maxGradNorm: 0, sharePrompt: sharePrompt, wireType: .fp32)
        return try DPOStep(policy: policy, reference: reference, masterWeights: master,
                           optimizer: FlatOptimizer(options: OptimizerOptions(kind: .sgd), decayMask: [Float](repeating: 1, count: master.count)),
                           lossScaler: DynamicLossScaler(enabled: precision == .fp16), options: options,
                           communicator: SingleProcessCommunicator())
    }

    func testAdapterGradientIsTheChainRuleOfTheMergedModelsForEveryLoss() throws {
        let s = try Self.setup(), config = Self.config
        for kind in PreferenceLossKind.allCases {
            for sharePrompt in [false, true] {
                var loss = PreferenceLossOptions()
                loss.kind = kind
                if kind.usesLabelSmoothing { loss.labelSmoothing = 0.1 }
                if kind == .sigmoid { loss.rpoAlpha = 0.5 }
                let label = "\(kind.rawValue) share \(sharePrompt)"

                let policy = try LlamaModel(config: config, precision: .fp32, trainable: true)
                s.base.withUnsafeBufferPointer { policy.loadWeights($0) }
                let adapters = try LoRAAdapters(model: config, config: s.adapters.config)
                policy.attach(adapters)
                let lora = try Self.step(policy: policy, reference: .baseModel(policy), master: s.values, loss: loss, sharePrompt: sharePrompt)
                let loraResult = try lora.step(microBatches: s.batches, learningRate: 0)

                let merged = policy.mergedWeights()
                let fullPolicy = try LlamaModel(config: config, precision: .fp32, trainable: true)
                let baseModel = try LlamaModel(config: config, precision: .fp32, trainable: false)
                s.base.withUnsafeBufferPointer { baseModel.loadWeights($0) }
                let full = try Self.step(policy: fullPolicy, reference: .model(baseModel), master: merged, loss: loss, sharePrompt: sharePrompt)
                let fullResult = try full.step(microBatches: s.batches, learningRate: 0)

                XCTAssertEqual(loraResult.objective, fullResult.objective, accuracy: 1e-5 * max(1, abs(fullResult.objective)), label)
                let expected = Self.chainRule(Array(full.lastGradients), layout: fullPolicy.layout, adapters: adapters,
                                              values: s.values, config: config)
                let got = Array(lora.lastGradients)
                XCTAssertGreaterThan(maxAbs(expected), 1e-4, label)
                XCTAssertLessThanOrEqual(maxAbsDifference(got, expected), 1e-4 * maxAbs(expected), label)
            }
        }
    }

    /// An applied SGD step moves only the adapters (master = adapters - lr x gradient), and the
    /// base the policy runs is unchanged: the reference log-probs stay the base model's.
    func testStepUpdatesOnlyTheAdapters() throws {
        let s = try Self.setup(), config = Self.config
        for precision in Precision.allCases {
            let policy = try LlamaModel(config: config, precision: precision, trainable: true)
            s.base.withUnsafeBufferPointer { policy.loadWeights($0) }
            policy.attach(try LoRAAdapters(model: config, config: s.adapters.config))
            let step = try Self.step(policy: policy, reference: .baseModel(policy), master: s.values, loss: PreferenceLossOptions(),
                                     sharePrompt: true, precision: precision)
            let before = ReferenceLogps.baseModel(policy).sums(for: s.batches[0])
            let result = try step.step(microBatches: s.batches, learningRate: 0.5)
            XCTAssertTrue(result.applied, "\(precision)")
            let expected = zip(s.values, step.lastGradients).map { $0 - 0.5 * $1 }
            XCTAssertEqual(step.masterWeights, expected, "\(precision)")
            XCTAssertEqual(policy.adapters!.values, step.masterWeights, "\(precision): the policy runs the updated adapters")
            let after = ReferenceLogps.baseModel(policy).sums(for: s.batches[0])
            XCTAssertEqual(before.chosen, after.chosen, "\(precision)")
            XCTAssertEqual(before.rejected, after.rejected, "\(precision)")
            var copy = [Float](repeating: 0, count: policy.layout.totalCount)
            copy.withUnsafeMutableBufferPointer { policy.copyWeights(into: $0) }
            let rounded = try LlamaModel(config: config, precision: precision, trainable: false)
            s.base.withUnsafeBufferPointer { rounded.loadWeights($0) }
            var expectedBase = copy
            expectedBase.withUnsafeMutableBufferPointer { rounded.copyWeights(into: $0) }
            XCTAssertEqual(copy, expectedBase, "\(precision): base weights untouched")
        }
    }

    /// The adapter gradient implied by the full gradient `full` through W' = W + s B A (Double sums).
    static func chainRule(_ full: [Float], layout: ParameterLayout, adapters: LoRAAdapters, values: [Float],
                          config: LlamaConfig) -> [Float] {
        var out = [Float](repeating: 0, count: adapters.layout.totalCount)
        let r = adapters.config.rank, s = Double(adapters.config.scale)
        for entry in adapters.layout.entries where !entry.isB {
            let f = entry.module.features(config)
            let pair = adapters.layout.pair(layer: entry.layer, module: entry.module)!
            let g = layout.entry(entry.baseName).offset
            for k in 0..<r {
                for i in 0..<f.in {
                    var sum = 0.0
                    for o in 0..<f.out { sum += Double(values[pair.b + o * r + k]) * Double(full[g + o * f.in + i]) }
                    out[pair.a + k * f.in + i] = Float(s * sum)
                }
            }
            for o in 0..<f.out {
                for k in 0..<r {
                    var sum = 0.0
                    for i in 0..<f.in { sum += Double(full[g + o * f.in + i]) * Double(values[pair.a + k * f.in + i]) }
                    out[pair.b + o * r + k] = Float(s * sum)
                }
            }
        }
        return out
    }
}
