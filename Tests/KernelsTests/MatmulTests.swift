import XCTest
import TestSupport
@testable import Kernels

final class MatmulTests: XCTestCase {
    /// Every transpose combination, with leading dimensions wider than the matrices and beta != 0,
    /// against the Double-accumulated oracle (tolerance 1e-5 relative to the largest value).
    func testGemmMatchesOracleForAllTransposes() {
        BLAS.ensureBestCore()
        var random = TestRandom(seed: 1)
        let m = 7, n = 5, k = 9, pad = 3
        for transposeA in [false, true] {
            for transposeB in [false, true] {
                let aRows = transposeA ? k : m, aCols = transposeA ? m : k
                let bRows = transposeB ? n : k, bCols = transposeB ? k : n
                let lda = aCols + pad, ldb = bCols + pad, ldc = n + pad
                let a = random.array(aRows * lda), b = random.array(bRows * ldb), c0 = random.array(m * ldc)
                let fast = c0.mutated { c in
                    Matmul.gemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: 0.7,
                                a: a, lda: lda, b: b, ldb: ldb, beta: 0.5, c: c, ldc: ldc)
                }
                let slow = c0.mutated { c in
                    Matmul.gemmNaive(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: 0.7,
                                     a: a, lda: lda, b: b, ldb: ldb, beta: 0.5, c: c, ldc: ldc)
                }
                XCTAssertLessThanOrEqual(maxAbsDifference(fast, slow), 1e-5 * max(1, maxAbs(slow)),
                                         "transposeA \(transposeA) transposeB \(transposeB)")
            }
        }
    }

    /// Linear backward (dx += dy W, dW += dy^T x) against finite differences of Σ w·(x W^T).
    func testLinearBackwardMatchesFiniteDifferences() {
        var random = TestRandom(seed: 2)
        let tokens = 4, inFeatures = 6, outFeatures = 5
        let x = random.array(tokens * inFeatures), weight = random.array(outFeatures * inFeatures)
        let dy = random.array(tokens * outFeatures)
        func output(_ x: [Float], _ w: [Float]) -> [Float] {
            [Float](repeating: 0, count: tokens * outFeatures).mutated { y in
                Linear.forward(x: x, weight: w, y: y, tokens: tokens, inFeatures: inFeatures, outFeatures: outFeatures)
            }
        }
        var dx = [Float](repeating: 0.25, count: x.count), dW = [Float](repeating: -0.5, count: weight.count)
        dx.withUnsafeMutableBufferPointer { dxp in
            dW.withUnsafeMutableBufferPointer { dwp in
                Linear.backward(x: x, weight: weight, dy: dy, dx: dxp.baseAddress!, dWeight: dwp.baseAddress!,
                                tokens: tokens, inFeatures: inFeatures, outFeatures: outFeatures)
            }
        }
        // The backward accumulates onto the initial values 0.25 and -0.5.
        checkGradient("dx", at: x, analytic: dx.map { $0 - 0.25 }) { weightedSum(output($0, weight), dy) }
        checkGradient("dW", at: weight, analytic: dW.map { $0 + 0.5 }) { weightedSum(output(x, $0), dy) }
    }
}
