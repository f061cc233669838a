import Distributed
import Llama
@testable import Preference
import XCTest

@testable import Training

/// `--gradient-checkpointing` through the whole `DPOStep` (policy forward, loss, backward,
/// AdamW): the gradients the optimizer sees and the updated weights are bit-identical to the
/// plain step, in fp32 and fp16 (loss scaling included), with and without shared prompts.
final class GradientCheckpointingStepTests: XCTestCase {
    static let config = LlamaConfig(hiddenSize: 16, intermediateSize: 32, numHiddenLayers: 3, numAttentionHeads: 2,
                                    numKeyValueHeads: 1, vocabSize: 40, maxPositionEmbeddings: 32, eosTokenId: 39, padTokenId: 0)

    func makeStep(precision: Precision, sharePrompt: Bool, checkpointing: Bool) throws -> DPOStep {
        let reference = WeightInitializer(seed: 5, standardDeviation: 0.3).weights(for: Self.config)
        let policyWeights = zip(reference, WeightInitializer(seed: 6, standardDeviation: 0.05).weights(for: Self.config)).map { $0 + $1 }
        let policy = try LlamaModel(config: Self.config, precision: precision, trainable: true)
        policy.gradientCheckpointing = checkpointing
        let referenceModel = try LlamaModel(config: Self.config, precision: precision, trainable: false)
        reference.withUnsafeBufferPointer { referenceModel.loadWeights($0) }
        return try DPOStep(
            policy: policy, reference: .model(referenceModel), masterWeights: policyWeights,
            optimizer: FlatOptimizer(options: OptimizerOptions(kind: .adamw), layout: policy.layout),
            lossScaler: DynamicLossScaler(enabled: precision == .fp16),
            options: DPOStep.Options(loss: PreferenceLossOptions(kind: .sigmoid, beta: 0.5), maxGradNorm: 1, sharePrompt: sharePrompt),
            communicator: SingleProcessCommunicator())
    }

    func testStepIsBitIdenticalWithCheckpointing() throws {
        let pairs = DPOStepTests.pairs
        let batches = [PreferenceBatch(pairs: pairs, indices: [0, 1], paddingId: 0), PreferenceBatch(pairs: pairs, indices: [2, 3], paddingId: 0)]
        for precision in [Precision.fp32, .fp16] {
            for share in [false, true] {
                let what = "\(precision), share prompt \(share)"
                let plain = try makeStep(precision: precision, sharePrompt: share, checkpointing: false)
                let checkpointed = try makeStep(precision: precision, sharePrompt: share, checkpointing: true)
                for _ in 0..<2 {
                    let a = try plain.step(microBatches: batches, learningRate: 1e-2)
                    let b = try checkpointed.step(microBatches: batches, learningRate: 1e-2)
                    XCTAssertTrue(a.applied, what)
                    XCTAssertEqual(a.objective.bitPattern, b.objective.bitPattern, what)
                    XCTAssertTrue(plain.lastGradients.contains { $0 != 0 }, what)
                    XCTAssertTrue(zip(plain.lastGradients, checkpointed.lastGradients).allSatisfy { $0.bitPattern == $1.bitPattern },
                                  "\(what): gradients differ")
                }
                XCTAssertEqual(plain.masterWeights.map(\.bitPattern), checkpointed.masterWeights.map(\.bitPattern), what)
            }
        }
    }
}
