import Foundation
import Llama
import TestSupport
import XCTest

@testable import Training

/// Issue 16's hints that contradict the command line, numerical failures: "use --precision
/// fp32" was offered to runs that were fp32 already. The advice now fits the run's precision.
final class NumericalAdviceTests: XCTestCase {
    private let precisionHint = "--precision fp32"

    /// Every step skipped (NaN gradients), and a persistent NaN stopping the run: fp32 runs are
    /// told to lower --lr or check the data; fp16 runs are also told to try fp32.
    func testSkippedStepAdviceFitsThePrecision() throws {
        let sandbox = try TrainerSandbox()
        let data = try sandbox.writePairs("train.jsonl", TrainerSandbox.arithmetic)
        for (precision, skippedSteps, expected) in [(Precision.fp32, 10, "all 3 step(s)"), (.fp16, 10, "all 3 step(s)"),
                                                    (.fp32, 2, "2 steps in a row"), (.fp16, 2, "2 steps in a row")] {
            var p = sandbox.parameters(data: data, out: "\(precision)-\(skippedSteps)")
            p.maxSteps = 3
            p.maxSkippedSteps = skippedSteps
            p.precision = precision
            XCTAssertThrowsError(try sandbox.train(p) { $0.gradientHook = { _, gradients in gradients[0] = .nan } }) { error in
                let text = "\(error)"
                XCTAssertTrue(text.contains(expected), text)
                XCTAssertTrue(text.contains("Lower --lr"), text)
                XCTAssertEqual(text.contains(self.precisionHint), precision == .fp16, "\(precision): \(text)")
            }
        }
    }

    /// Final weights that overflow to infinity (--lr 1e39) on an fp32 run: no advice to use fp32.
    func testNonFiniteFinalWeightsOfAnFP32RunGiveNoPrecisionAdvice() throws {
        let job = try TrainingJobSandbox()
        let run = try job.train(ranks: 1, out: "run", ["--lr", "1e39", "--max-steps", "3", "--max-skipped-steps", "10"])
        XCTAssertEqual(run.status, 1, run.output)
        XCTAssertTrue(run.output.contains("the final weights are not finite"), run.output)
        XCTAssertTrue(run.output.contains("--lr"), run.output)
        XCTAssertFalse(run.output.contains(precisionHint), run.output)
    }
}
