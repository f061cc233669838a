import XCTest
import TestSupport
@testable import Kernels

final class LabelLogProbsTests: XCTestCase {
    let hiddenSize = 6, vocab = 11

    func run(_ hidden: [Float], _ weight: [Float], _ targets: [Int32]) -> (logps: [Float], lse: [Float]) {
        var lse = [Float](repeating: 0, count: targets.count)
        var scratch = [Float](repeating: 0, count: LabelLogProbs.chunkRows * vocab)
        let logps = [Float](repeating: 0, count: targets.count).mutated { out in
            LabelLogProbs.forward(hidden: hidden, weight: weight, targets: targets, logps: out, logSumExp: &lse,
                                  positions: targets.count, hiddenSize: hiddenSize, vocab: vocab, scratch: &scratch)
        }
        return (logps, lse)
    }

    /// Chunked float32 log-softmax gather equals the Double full-logits oracle, across more
    /// positions than one chunk.
    func testForwardMatchesOracleAcrossChunks() {
        var random = TestRandom(seed: 14)
        let positions = LabelLogProbs.chunkRows + 9
        let hidden = random.array(positions * hiddenSize, scale: 3), weight = random.array(vocab * hiddenSize)
        let targets = (0..<positions).map { Int32($0 % vocab) }
        let (logps, _) = run(hidden, weight, targets)
        let expected = LabelLogProbs.forwardNaive(hidden: hidden, weight: weight, targets: targets, hiddenSize: hiddenSize, vocab: vocab)
        XCTAssertLessThanOrEqual(maxAbsDifference(logps, expected), 2e-5)
        XCTAssertTrue(logps.allSatisfy { $0 < 0 })
    }

    /// dHidden and dWeight equal finite differences of Σ w·logps.
    func testBackwardMatchesFiniteDifferences() {
        var random = TestRandom(seed: 15)
        let targets: [Int32] = [3, 0, 10, 3]
        let hidden = random.array(targets.count * hiddenSize), weight = random.array(vocab * hiddenSize)
        let dLogps = random.array(targets.count)
        let (_, lse) = run(hidden, weight, targets)
        var dHidden = [Float](repeating: .nan, count: hidden.count), dWeight = [Float](repeating: 0, count: weight.count)
        var scratch = [Float](repeating: 0, count: LabelLogProbs.chunkRows * vocab)
        LabelLogProbs.backward(hidden: hidden, weight: weight, targets: targets, logSumExp: lse, dLogps: dLogps,
                               dHidden: &dHidden, dWeight: &dWeight, positions: targets.count, hiddenSize: hiddenSize,
                               vocab: vocab, scratch: &scratch)
        checkGradient("dHidden", at: hidden, analytic: dHidden, samples: hidden.count, step: 1e-3) {
            weightedSum(run($0, weight, targets).logps, dLogps)
        }
        checkGradient("dWeight", at: weight, analytic: dWeight, samples: 40, step: 1e-3) {
            weightedSum(run(hidden, $0, targets).logps, dLogps)
        }
    }
}
