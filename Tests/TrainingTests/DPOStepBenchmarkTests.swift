import Llama
import XCTest

@testable import Training

final class DPOStepBenchmarkTests: XCTestCase {
    /// The benchmark runs the real trainer on rows of exactly the asked length.
    func testBenchmarkTimesTheTrainingStep() throws {
        let result = try DPOStepBenchmark.run(preset: .tiny, precision: .fp32, batchPairs: 2, sequenceLength: 16, timedSteps: 2)
        XCTAssertEqual(result.tokensPerStep, 2 * 2 * 15)
        XCTAssertEqual(result.timedSteps, 2)
        XCTAssertTrue(result.tokensPerSecond.isFinite && result.tokensPerSecond > 0, "\(result)")
        XCTAssertThrowsError(try DPOStepBenchmark.run(preset: .tiny, precision: .fp32, batchPairs: 0, sequenceLength: 16))
    }
}
