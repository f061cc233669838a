import Foundation
import Llama
import XCTest

@testable import Training

/// `--resume` with another `--precision` is refused unless `--allow-changed-config`; when it is
/// allowed, the run must scale the loss as the new precision does. Before, the checkpoint's loss
/// scaler was kept as it was: an fp32 checkpoint continued under fp16 trained with loss scale 1
/// (binary16 gradients below 6e-8 flush to zero in backward, which dynamic loss scaling exists to
/// prevent), and an fp16 checkpoint continued under fp32 kept multiplying by 65536.
final class PrecisionChangeResumeTests: XCTestCase {
    func testAResumeUnderAnotherPrecisionScalesTheLossAsThatPrecisionDoes() throws {
        for (before, after, expected) in [(Precision.fp32, Precision.fp16, DynamicLossScaler.initialScale), (.fp16, .fp32, 1.0)] {
            let sandbox = try TrainerSandbox()
            let data = try sandbox.writePairs("train.jsonl", TrainerSandbox.arithmetic)
            var p = sandbox.parameters(data: data)
            p.maxSteps = 2
            p.precision = before
            let (_, first) = try sandbox.train(p)
            XCTAssertEqual(first.series("loss_scale"), [before == .fp16 ? DynamicLossScaler.initialScale : 1, before == .fp16 ? DynamicLossScaler.initialScale : 1])
            var resumed = p
            resumed.resume = "auto"
            resumed.maxSteps = 3
            resumed.precision = after
            resumed.allowChangedConfig = true
            let (summary, sink) = try sandbox.train(resumed)
            XCTAssertEqual(summary.startStep, 2)
            XCTAssertEqual(sink.series("loss_scale"), [expected], "\(before) -> \(after)")
        }
    }
}
