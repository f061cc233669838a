import XCTest
import TestSupport
@testable import Kernels

final class HalfLinearTests: XCTestCase {
    /// `HalfLinear.forward` (binary16 weights converted in registers) against the Double oracle on
    /// the decoded weights and against what it replaces (the whole matrix converted, then
    /// sgemm), on shapes that are not multiples of its 8-row and 16-column blocks, with beta 0
    /// (NaN in y overwritten) and beta 0.5.
    func testMatchesOracleAndConvertedSgemm() {
        BLAS.ensureBestCore()
        var random = TestRandom(seed: 5)
        for (tokens, out, inFeatures) in [(1, 13, 37), (3, 8, 16), (5, 1, 70), (2, 29, 1), (4, 17, 100)] {
            let x = random.array(tokens * inFeatures), half = Half.encode(random.array(out * inFeatures))
            let weight = Half.decode(half)
            for beta: Float in [0, 0.5] {
                let y0 = beta == 0 ? [Float](repeating: .nan, count: tokens * out) : random.array(tokens * out)
                let fused = y0.mutated { y in
                    HalfLinear.forward(x: x, weight: half, y: y, tokens: tokens, inFeatures: inFeatures, outFeatures: out, beta: beta)
                }
                let oracle = y0.mutated { y in
                    Matmul.gemmNaive(transposeA: false, transposeB: true, m: tokens, n: out, k: inFeatures,
                                     a: x, lda: inFeatures, b: weight, ldb: inFeatures, beta: beta, c: y, ldc: out)
                }
                let converted = y0.mutated { y in
                    Linear.forward(x: x, weight: weight, y: y, tokens: tokens, inFeatures: inFeatures, outFeatures: out, beta: beta)
                }
                // Float32 accumulation over `in` terms of magnitude <= 1: a few ulps of the row sum.
                let bound = 1e-6 * Float(inFeatures) + 1e-6
                let label = "tokens \(tokens) out \(out) in \(inFeatures) beta \(beta)"
                XCTAssertLessThanOrEqual(maxAbsDifference(fused, oracle), bound, label)
                XCTAssertLessThanOrEqual(maxAbsDifference(fused, converted), 2 * bound, label)
            }
        }
    }

    /// Output rows split over two threads give the same bits as one thread (each output is one
    /// thread's dot product in a fixed order).
    func testThreadsDoNotChangeTheResult() {
        var random = TestRandom(seed: 6)
        let tokens = 2, out = 1_000, inFeatures = 45
        let x = random.array(tokens * inFeatures), half = Half.encode(random.array(out * inFeatures))
        func run(threads: Int) -> [Float] {
            let previous = BLAS.threads
            BLAS.threads = threads
            defer { BLAS.threads = previous }
            return [Float](repeating: 0, count: tokens * out).mutated { y in
                HalfLinear.forward(x: x, weight: half, y: y, tokens: tokens, inFeatures: inFeatures, outFeatures: out)
            }
        }
        let one = run(threads: 1)
        XCTAssertEqual(one, run(threads: 2))
        XCTAssertGreaterThan(maxAbs(one), 0)
    }
}
