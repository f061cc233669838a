import Kernels
import TestSupport
import XCTest

/// The threaded sum of squares behind the global gradient norm: the same bits at any thread
/// count and on either vector path, within 1e-12 (relative) of a plain sequential Double sum.
final class SumOfSquaresTests: XCTestCase {
    private func sum(_ x: [Float], scale: Float = 1) -> Double { x.withUnsafeBufferPointer { SumOfSquares.of($0, scale: scale) } }

    private func sequential(_ x: [Float], scale: Float) -> Double {
        x.reduce(0.0) { let d = Double($1 * scale); return $0 + d * d }
    }

    func testDeterministicAcrossThreadsAndPaths() {
        let previous = BLAS.threads
        defer { BLAS.threads = previous; AdamWSweep.forcePortable(false) }
        var random = TestRandom(seed: 5)
        for count in [0, 1, 15, 17, 4_099, 3 * SumOfSquares.blockSize + 11] {
            let x = random.array(count, scale: 100)
            for scale: Float in [1, 1.0 / 512] {
                BLAS.threads = 1
                let one = sum(x, scale: scale)
                BLAS.threads = 2
                let two = sum(x, scale: scale)
                AdamWSweep.forcePortable(true)
                let portable = sum(x, scale: scale)
                AdamWSweep.forcePortable(false)
                XCTAssertEqual(one.bitPattern, two.bitPattern, "n=\(count): 1 vs 2 threads")
                XCTAssertEqual(one.bitPattern, portable.bitPattern, "n=\(count): vector vs portable path")
                let reference = sequential(x, scale: scale)
                XCTAssertEqual(one, reference, accuracy: reference * 1e-12, "n=\(count) scale \(scale)")
            }
        }
    }

    /// A non-finite element makes the sum non-finite (how non-finite steps are caught), even in a block's tail.
    func testNonFiniteElementsPropagate() {
        var x = [Float](repeating: 0.5, count: SumOfSquares.blockSize + 3)
        x[x.count - 1] = .infinity
        XCTAssertEqual(sum(x), .infinity)
        x[x.count - 1] = .nan
        XCTAssertTrue(sum(x).isNaN)
        x[x.count - 1] = .greatestFiniteMagnitude
        XCTAssertTrue(sum(x).isFinite, "a finite float squares to a finite double")
    }
}
