import XCTest
import TestSupport
@testable import Kernels

final class HalfMatmulTests: XCTestCase {
    /// `HalfMatmul.gemm` (binary16 B converted while packed) against the Double oracle on the
    /// decoded B, both layouts of B, beta 0 (NaN in C overwritten) and 0.7, leading dimensions
    /// wider than the matrices, and shapes that are not multiples of the kernel's 14 x 32 tile,
    /// its 42-row A blocks, its 1536-column B blocks or its 1536-deep K blocks (k = 1601: two).
    func testMatchesOracle() {
        var random = TestRandom(seed: 11)
        let shapes = [(1, 1, 1), (13, 45, 37), (43, 33, 16), (29, 1537, 20), (15, 31, 1601), (3, 64, 0)]
        for (m, n, k) in shapes {
            for transposeB in [true, false] {
                let pad = 3, lda = k + pad, ldb = (transposeB ? k : n) + pad, ldc = n + pad
                let a = random.array(m * lda), half = Half.encode(random.array((transposeB ? n : k) * ldb))
                let b = Half.decode(half)
                for beta: Float in [0, 0.7] {
                    let c0 = beta == 0 ? [Float](repeating: .nan, count: m * ldc) : random.array(m * ldc)
                    let fast = c0.mutated { c in
                        HalfMatmul.gemm(transposeB: transposeB, m: m, n: n, k: k, a: a, lda: lda, b: half, ldb: ldb,
                                        beta: beta, c: c, ldc: ldc)
                    }
                    let oracle = c0.mutated { c in
                        Matmul.gemmNaive(transposeA: false, transposeB: transposeB, m: m, n: n, k: k, a: a, lda: lda,
                                         b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
                    }
                    // Only the m x n block is written (the padding keeps its NaN or values).
                    let label = "m \(m) n \(n) k \(k) transposeB \(transposeB) beta \(beta)"
                    XCTAssertEqual(fast.map(\.isNaN), oracle.map(\.isNaN), label)
                    let bound = 1e-6 * Float(k) + 1e-6  // float32 sums of k terms of magnitude <= 1
                    XCTAssertLessThanOrEqual(maxAbsDifference(fast.filter { !$0.isNaN }, oracle.filter { !$0.isNaN }), bound, label)
                }
            }
        }
    }

    /// The threads split the columns (m <= n) or the rows (m > n, on whole kernel tiles, here
    /// with a ragged last one), and a caller may split the rows (the reference's row chunks):
    /// none changes a bit, since every element is summed in the same order.
    func testSplitsDoNotChangeTheResult() {
        var random = TestRandom(seed: 12)
        let k = 1700
        for (m, n, transposeB) in [(50, 300, true), (300, 50, true), (300, 50, false)] {
            let a = random.array(m * k), half = Half.encode(random.array(n * k)), c0 = random.array(m * n)
            func run(threads: Int, rowSplit: Int) -> [Float] {
                let previous = BLAS.threads
                BLAS.threads = threads
                defer { BLAS.threads = previous }
                return c0.mutated { c in
                    a.withUnsafeBufferPointer { a in
                        for start in stride(from: 0, to: m, by: rowSplit) {
                            HalfMatmul.gemm(transposeB: transposeB, m: min(rowSplit, m - start), n: n, k: k,
                                            a: a.baseAddress! + start * k, lda: k, b: half, ldb: transposeB ? k : n,
                                            beta: 1, c: c + start * n, ldc: n)
                        }
                    }
                }
            }
            let whole = run(threads: 1, rowSplit: m)
            XCTAssertEqual(whole, run(threads: 2, rowSplit: m), "m \(m), n \(n)")
            XCTAssertEqual(whole, run(threads: 1, rowSplit: 17), "m \(m), n \(n)")
            XCTAssertEqual(whole, run(threads: 2, rowSplit: 130), "m \(m), n \(n)")
            XCTAssertGreaterThan(maxAbs(whole), 0)
        }
    }

    /// `Linear` over a binary16 weight: forward and backward equal the float32 weight's within
    /// float32 rounding, and the backward matches finite differences of Σ w·(x W^T).
    func testLinearOverBinary16Weights() {
        var random = TestRandom(seed: 13)
        let tokens = 9, inFeatures = 40, outFeatures = 35
        let x = random.array(tokens * inFeatures), half = Half.encode(random.array(outFeatures * inFeatures))
        let weight = Half.decode(half), dy = random.array(tokens * outFeatures)
        func output(_ x: [Float], _ w: WeightMatrix) -> [Float] {
            [Float](repeating: 0, count: tokens * outFeatures).mutated { y in
                Linear.forward(x: x, weight: w, y: y, tokens: tokens, inFeatures: inFeatures, outFeatures: outFeatures)
            }
        }
        func gradients(_ w: WeightMatrix) -> (dx: [Float], dW: [Float]) {
            var dx = [Float](repeating: 0.25, count: x.count), dW = [Float](repeating: -0.5, count: weight.count)
            dx.withUnsafeMutableBufferPointer { dxp in
                dW.withUnsafeMutableBufferPointer { dwp in
                    Linear.backward(x: x, weight: w, dy: dy, dx: dxp.baseAddress!, dWeight: dwp.baseAddress!,
                                    tokens: tokens, inFeatures: inFeatures, outFeatures: outFeatures)
                }
            }
            return (dx.map { $0 - 0.25 }, dW.map { $0 + 0.5 })  // the backward accumulates onto 0.25 and -0.5
        }
        half.withUnsafeBufferPointer { h in
            weight.withUnsafeBufferPointer { w in
                let binary16 = WeightMatrix.binary16(h.baseAddress!), float32 = WeightMatrix.float32(w.baseAddress!)
                XCTAssertLessThanOrEqual(maxAbsDifference(output(x, binary16), output(x, float32)), 1e-5)
                let (dx, dW) = gradients(binary16), (dx32, dW32) = gradients(float32)
                XCTAssertLessThanOrEqual(maxAbsDifference(dx, dx32), 1e-5)
                XCTAssertEqual(dW, dW32)  // the weight gradient reads no weight
                checkGradient("dx", at: x, analytic: dx) { weightedSum(output($0, binary16), dy) }
            }
        }
    }
}
