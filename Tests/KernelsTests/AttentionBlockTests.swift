import XCTest
import TestSupport
@testable import Kernels

/// Rows longer than `Attention.queryBlock`, so the causal block skipping is exercised.
final class AttentionBlockTests: XCTestCase {
    let shape = Attention.Shape(rows: 3, seqLen: 2 * Attention.queryBlock + 22, heads: 2, kvHeads: 1, headDim: 4)
    var lengths: [Int] { [shape.seqLen, Attention.queryBlock + 33, Attention.queryBlock] }

    func run(_ q: [Float], _ k: [Float], _ v: [Float]) -> (output: [Float], probs: [Float]) {
        var probs = [Float](repeating: 0, count: shape.probsCount)
        let output = [Float](repeating: .nan, count: shape.rows * shape.seqLen * shape.queryWidth).mutated { o in
            Attention.forward(q: q, k: k, v: v, lengths: lengths, probs: &probs, output: o, shape: shape)
        }
        return (output, probs)
    }

    /// Forward equals the oracle (1e-5) and backward equals finite differences across block edges.
    func testLongRowsMatchOracleAndFiniteDifferences() {
        var random = TestRandom(seed: 17)
        let n = shape.rows * shape.seqLen
        let q = random.array(n * shape.queryWidth, scale: 2), k = random.array(n * shape.keyWidth, scale: 2)
        let v = random.array(n * shape.keyWidth)
        let (output, probs) = run(q, k, v)
        XCTAssertLessThanOrEqual(maxAbsDifference(output, Attention.forwardNaive(q: q, k: k, v: v, lengths: lengths, shape: shape)), 1e-5)
        let dOutput = random.array(output.count)
        var dq = [Float](repeating: .nan, count: q.count), dk = [Float](repeating: .nan, count: k.count)
        var dv = [Float](repeating: .nan, count: v.count)
        var scratch = [Float](repeating: 0, count: shape.backwardScratchCount)
        Attention.backward(q: q, k: k, v: v, lengths: lengths, probs: probs, dOutput: dOutput,
                           dq: &dq, dk: &dk, dv: &dv, scratch: &scratch, shape: shape)
        XCTAssertTrue((dq + dk + dv).allSatisfy(\.isFinite))
        checkGradient("dq", at: q, analytic: dq, samples: 30, step: 1e-2) { weightedSum(run($0, k, v).output, dOutput) }
        checkGradient("dk", at: k, analytic: dk, samples: 30, step: 1e-2) { weightedSum(run(q, $0, v).output, dOutput) }
        checkGradient("dv", at: v, analytic: dv, samples: 30, step: 1e-2) { weightedSum(run(q, k, $0).output, dOutput) }
    }
}
