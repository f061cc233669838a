import Llama
import XCTest

@testable import DPOTools
@testable import Training

final class DPOStepBenchmarkTests: XCTestCase {
    /// The benchmark runs the real trainer on rows of exactly the asked length, plain and with
    /// shared prompts + precomputed reference: positive rates, phases that fit in the step, the
    /// anchor's FLOP count for the plain step, less executed work with the switches on.
    func testBenchmarkTimesTheTrainingStep() throws {
        var options = DPOStepBenchmark.Options(preset: .tiny)
        options.batchPairs = 2
        options.sequenceLength = 16
        options.timedSteps = 2
        let plain = try DPOStepBenchmark.run(options)
        XCTAssertEqual(plain.tokensPerStep, 2 * 2 * 16)
        XCTAssertEqual(plain.timedSteps, 2)
        XCTAssertTrue(plain.tokensPerSecond.isFinite && plain.tokensPerSecond > 0, "\(plain)")
        XCTAssertGreaterThan(plain.phases.policyForward, 0)
        XCTAssertGreaterThan(plain.phases.referenceForward, 0)
        XCTAssertLessThanOrEqual(plain.phases.total, plain.medianStepSeconds * 1.5 + 0.05)
        // The anchor's count: 8 N tokens + 16 L T d tokens / 2.
        let c = LlamaPreset.tiny.config
        let n = Double(ModelBenchmark.matmulParameters(c)), tokens = Double(2 * 2 * 16)
        XCTAssertEqual(plain.plainStepFLOPs, 8 * n * tokens + 16 * Double(c.numHiddenLayers * 16 * c.qDim) * tokens / 2,
                       accuracy: 1e-6 * plain.plainStepFLOPs)
        XCTAssertEqual(plain.executedStepFLOPs, plain.plainStepFLOPs)
        XCTAssertGreaterThan(plain.peakResidentMB, 0)

        options.sharePrompt = true
        options.precomputeReference = true
        let lean = try DPOStepBenchmark.run(options)
        XCTAssertEqual(lean.plainStepFLOPs, plain.plainStepFLOPs)
        XCTAssertLessThan(lean.executedStepFLOPs, 0.75 * plain.executedStepFLOPs)
        XCTAssertEqual(lean.phases.referenceForward, 0, accuracy: 0.01)

        options.batchPairs = 0
        XCTAssertThrowsError(try DPOStepBenchmark.run(options))
    }
}
