import Foundation
import Llama
import Preference
import TestSupport
import XCTest

@testable import Training

/// `--share-prompt` (each pair's prompt run once) is exact: the trainer's update equals the plain
/// concatenated step's.
final class TrainerSharedPromptTests: XCTestCase {
    /// One SGD step (lr 1, no clipping: the update is the gradient) on 4 pairs with and without
    /// prompt sharing, sigmoid and IPO, live reference: the weights agree within 2e-5 x the update's
    /// largest magnitude, and the logged loss within 1e-5.
    func testSharedPromptStepEqualsPlainStep() throws {
        let sandbox = try TrainerSandbox()
        let data = try sandbox.writePairs("train.jsonl", TrainerSandbox.arithmetic)
        let initial = try ModelDirectory.load(sandbox.modelDirectory).weights
        for kind in [PreferenceLossKind.sigmoid, .ipo] {
            var finals: [[Float]] = [], losses: [Double] = []
            for share in [false, true] {
                var p = sandbox.parameters(data: data, out: "share-\(kind.rawValue)-\(share)")
                p.loss = PreferenceLossOptions(kind: kind, beta: 0.5)
                p.optimizer = OptimizerOptions(kind: .sgd)
                p.learningRate = 1.0
                p.schedule = .constant
                p.maxGradNorm = 0
                p.batchPairs = 4
                p.maxSteps = 1
                p.shuffle = false
                p.sharePrompt = share
                let (summary, sink) = try sandbox.train(p)
                finals.append(try TrainerSandbox.masterWeights(summary.savedDirectory!))
                losses.append(try XCTUnwrap(sink.series("loss").first))
            }
            let update = zip(finals[0], initial).map { $0 - $1 }
            XCTAssertGreaterThan(maxAbs(update), 1e-4, "\(kind) moved the weights")
            XCTAssertLessThanOrEqual(maxAbsDifference(finals[1], finals[0]), 2e-5 * maxAbs(update), "\(kind)")
            XCTAssertEqual(losses[1], losses[0], accuracy: 1e-5, "\(kind)")
        }
    }
}
