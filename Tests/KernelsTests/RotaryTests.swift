import XCTest
import TestSupport
@testable import Kernels

final class RotaryTests: XCTestCase {
    /// In-place rotation of every head equals the literal `q*cos + rotate_half(q)*sin`, and
    /// the table follows inv_freq = theta^(-2i/d) with cos/sin duplicated over both halves.
    func testForwardMatchesRotateHalfOracle() {
        var random = TestRandom(seed: 7)
        let headDim = 8, heads = 3, rows = 2, seqLen = 5, theta: Float = 10000
        let rotary = Rotary(headDim: headDim, theta: theta, maxPositions: 16)
        XCTAssertEqual(rotary.cosTable[3 * 4 + 1], Float(cos(3 * pow(10000.0, -2.0 / 8))), accuracy: 1e-6)
        let x = random.array(rows * seqLen * heads * headDim)
        let y = x.mutated { rotary.forward($0, rows: rows, seqLen: seqLen, heads: heads, startPosition: 2) }
        for token in 0..<(rows * seqLen) {
            for h in 0..<heads {
                let start = (token * heads + h) * headDim
                let expected = rotary.forwardNaive(Array(x[start..<(start + headDim)]), position: 2 + token % seqLen)
                XCTAssertLessThanOrEqual(maxAbsDifference(Array(y[start..<(start + headDim)]), expected), 1e-6)
            }
        }
    }

    /// Backward (the inverse rotation) equals finite differences and undoes forward.
    func testBackwardMatchesFiniteDifferences() {
        var random = TestRandom(seed: 8)
        let headDim = 4, heads = 2, rows = 1, seqLen = 3
        let rotary = Rotary(headDim: headDim, theta: 100, maxPositions: 8)
        let x = random.array(rows * seqLen * heads * headDim), dy = random.array(x.count)
        let dx = dy.mutated { rotary.backward($0, rows: rows, seqLen: seqLen, heads: heads) }
        checkGradient("dx", at: x, analytic: dx, samples: x.count) { v in
            weightedSum(v.mutated { rotary.forward($0, rows: rows, seqLen: seqLen, heads: heads) }, dy)
        }
        let roundTrip = x.mutated {
            rotary.forward($0, rows: rows, seqLen: seqLen, heads: heads)
            rotary.backward($0, rows: rows, seqLen: seqLen, heads: heads)
        }
        XCTAssertLessThanOrEqual(maxAbsDifference(roundTrip, x), 1e-6)
    }
}

#if canImport(Glibc)
import Glibc
#endif
