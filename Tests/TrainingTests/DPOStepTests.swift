import Distributed
import Llama
@testable import Preference
import XCTest

@testable import Training

/// `DPOStep` on in-memory models: its gradient is the derivative of its objective, gradient
/// accumulation over micro-batches equals one batch, and a non-finite gradient skips the update.
final class DPOStepTests: XCTestCase {
    static let config = LlamaConfig(hiddenSize: 16, intermediateSize: 32, numHiddenLayers: 1, numAttentionHeads: 2,
                                    numKeyValueHeads: 1, vocabSize: 40, maxPositionEmbeddings: 32, eosTokenId: 39, padTokenId: 0)

    /// Four pairs of different lengths (prompt, chosen, rejected token ids).
    static let pairs: [EncodedPair] = (0..<4).map { i in
        let prompt = (0..<(3 + i)).map { Int32(1 + ($0 * 5 + i) % 37) }
        let chosen = (0..<(2 + i % 2)).map { Int32(1 + ($0 * 7 + 2 * i) % 37) } + [39]
        let rejected = (0..<(3 - i % 2)).map { Int32(1 + ($0 * 3 + 5 * i) % 37) } + [39]
        return EncodedPair(index: i, prompt: prompt, chosen: chosen, rejected: rejected,
                           promptTruncated: false, chosenTruncated: false, rejectedTruncated: false)
    }

    func makeStep(policyWeights: [Float], referenceWeights: [Float], optimizer kind: OptimizerKind = .sgd) throws -> DPOStep {
        let policy = try LlamaModel(config: Self.config, precision: .fp32, trainable: true)
        let reference = try LlamaModel(config: Self.config, precision: .fp32, trainable: false)
        referenceWeights.withUnsafeBufferPointer { reference.loadWeights($0) }
        return try DPOStep(
            policy: policy, reference: .model(reference), masterWeights: policyWeights,
            optimizer: FlatOptimizer(options: OptimizerOptions(kind: kind), layout: policy.layout),
            lossScaler: DynamicLossScaler(enabled: false),
            options: DPOStep.Options(loss: PreferenceLossOptions(kind: .sigmoid, beta: 0.5), maxGradNorm: 0, sharePrompt: false),
            communicator: SingleProcessCommunicator())
    }

    func batch(_ indices: [Int]) -> PreferenceBatch { PreferenceBatch(pairs: Self.pairs, indices: indices, paddingId: 0) }

    /// The policy moved away from the reference so the loss is not at its symmetric point.
    func weights() -> (policy: [Float], reference: [Float]) {
        let reference = WeightInitializer(seed: 5, standardDeviation: 0.3).weights(for: Self.config)
        let policy = zip(reference, WeightInitializer(seed: 6, standardDeviation: 0.05).weights(for: Self.config)).map { $0 + $1 }
        return (policy, reference)
    }

    /// Central differences of the step's objective along a random direction match the gradient
    /// the step hands the optimizer (and learning rate 0 leaves the weights alone).
    func testGradientIsTheDerivativeOfTheObjective() throws {
        let (policy, reference) = weights()
        let step = try makeStep(policyWeights: policy, referenceWeights: reference)
        let result = try step.step(microBatches: [batch([0, 1]), batch([2, 3])], learningRate: 0)
        XCTAssertTrue(result.applied)
        XCTAssertEqual(step.masterWeights, policy, "learning rate 0 changes nothing")
        var random = SeededRandom(seed: 9)
        let direction = (0..<policy.count).map { _ in Float(Double(random.next() >> 11) / Double(1 << 53) * 2 - 1) }
        let analytic = zip(step.lastGradients, direction).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        let epsilon: Float = 1e-3
        func objective(_ sign: Float) throws -> Double {
            let moved = zip(policy, direction).map { $0 + sign * epsilon * $1 }
            return try makeStep(policyWeights: moved, referenceWeights: reference)
                .step(microBatches: [batch([0, 1]), batch([2, 3])], learningRate: 0).objective
        }
        let numeric = (try objective(1) - objective(-1)) / (2 * Double(epsilon))
        XCTAssertEqual(analytic, numeric, accuracy: 2e-3 * max(1, abs(numeric)), "analytic \(analytic), numeric \(numeric)")
        XCTAssertGreaterThan(abs(analytic), 1e-4, "a zero gradient would prove nothing")
    }

    /// Two micro-batches of two pairs take the same SGD step as one batch of four.
    func testAccumulationEqualsOneBatch() throws {
        let (policy, reference) = weights()
        let whole = try makeStep(policyWeights: policy, referenceWeights: reference)
        let split = try makeStep(policyWeights: policy, referenceWeights: reference)
        let a = try whole.step(microBatches: [batch([0, 1, 2, 3])], learningRate: 0.1)
        let b = try split.step(microBatches: [batch([0, 1]), batch([2, 3])], learningRate: 0.1)
        XCTAssertEqual(a.objective, b.objective, accuracy: 1e-6)
        XCTAssertEqual(a.globalPairs, 4)
        XCTAssertEqual(b.metricSums.pairs, 4)
        XCTAssertLessThan(maxAbsDifference(whole.masterWeights, split.masterWeights), 1e-6)
        XCTAssertGreaterThan(maxAbsDifference(whole.masterWeights, policy), 1e-5, "the step moved the weights")
        XCTAssertEqual(whole.stepIndex, 1)
    }

    /// A NaN in the averaged gradients: the step is not applied, the weights and optimizer stay, the scaler counts it.
    func testNonFiniteGradientsSkipTheUpdate() throws {
        let (policy, reference) = weights()
        let step = try makeStep(policyWeights: policy, referenceWeights: reference, optimizer: .adamw)
        step.faults = StepFaults(afterReduction: { index, g in if index == 0 { g[3] = .nan } })
        let skipped = try step.step(microBatches: [batch([0, 1])], learningRate: 0.1)
        XCTAssertFalse(skipped.applied)
        XCTAssertEqual(step.masterWeights, policy)
        XCTAssertEqual(step.optimizer.stepCount, 0)
        XCTAssertEqual(step.lossScaler.totalSkips, 1)
        let applied = try step.step(microBatches: [batch([0, 1])], learningRate: 0.1)
        XCTAssertTrue(applied.applied)
        XCTAssertEqual(step.optimizer.stepCount, 1)
        XCTAssertEqual(step.stepIndex, 2)
    }

    func maxAbsDifference(_ a: [Float], _ b: [Float]) -> Float { zip(a, b).map { abs($0 - $1) }.max() ?? 0 }
}
