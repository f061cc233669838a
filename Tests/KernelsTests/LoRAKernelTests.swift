import XCTest
import TestSupport
@testable import Kernels

/// The LoRA low-rank path against its naive oracle and finite differences.
final class LoRAKernelTests: XCTestCase {
    // 5 tokens, in 7, out 6 inside a row of 9 (a column block of a stacked output), rank 3.
    let shape = LoRALinear.Shape(tokens: 5, inFeatures: 7, outFeatures: 6, rank: 3, ldy: 9, scale: 1.7)

    struct Inputs {
        var x, a, b, y, dy: [Float]
    }

    func inputs(seed: UInt64) -> Inputs {
        var random = TestRandom(seed: seed)
        let s = shape
        return Inputs(x: random.array(s.tokens * s.inFeatures), a: random.array(s.rank * s.inFeatures),
                      b: random.array(s.outFeatures * s.rank), y: random.array(s.tokens * s.ldy),
                      dy: random.array(s.tokens * s.ldy))
    }

    func forward(_ i: Inputs, naive: Bool) -> [Float] {
        var y = i.y
        var u = [Float](repeating: 0, count: shape.tokens * shape.rank)
        y.withUnsafeMutableBufferPointer { yp in
            u.withUnsafeMutableBufferPointer { up in
                if naive {
                    LoRALinear.forwardNaive(x: i.x, a: i.a, b: i.b, y: yp.baseAddress!, shape: shape)
                } else {
                    LoRALinear.forward(x: i.x, a: i.a, b: i.b, y: yp.baseAddress!, u: up.baseAddress!, shape: shape)
                }
            }
        }
        return y
    }

    /// (dx, dA, dB) accumulated onto the given starting values.
    func backward(_ i: Inputs, naive: Bool, start: [Float]) -> (dx: [Float], dA: [Float], dB: [Float]) {
        let s = shape
        var dx = Array(start.prefix(s.tokens * s.inFeatures)), dA = Array(start.prefix(s.rank * s.inFeatures))
        var dB = Array(start.prefix(s.outFeatures * s.rank))
        var u = [Float](repeating: 0, count: s.tokens * s.rank), du = u
        dx.withUnsafeMutableBufferPointer { dxp in
            dA.withUnsafeMutableBufferPointer { dap in
                dB.withUnsafeMutableBufferPointer { dbp in
                    if naive {
                        LoRALinear.backwardNaive(x: i.x, a: i.a, b: i.b, dy: i.dy, dx: dxp.baseAddress!, dA: dap.baseAddress!,
                                                 dB: dbp.baseAddress!, shape: s)
                    } else {
                        u.withUnsafeMutableBufferPointer { up in
                            du.withUnsafeMutableBufferPointer { dup in
                                LoRALinear.backward(x: i.x, a: i.a, b: i.b, dy: i.dy, dx: dxp.baseAddress!, dA: dap.baseAddress!,
                                                    dB: dbp.baseAddress!, u: up.baseAddress!, du: dup.baseAddress!, shape: s)
                            }
                        }
                    }
                }
            }
        }
        return (dx, dA, dB)
    }

    /// BLAS path = naive oracle (forward adds into y, columns past `outFeatures` untouched;
    /// backward accumulates onto nonzero starting gradients) within 1e-5 of the magnitudes.
    func testMatchesNaiveOracle() {
        let i = inputs(seed: 1)
        let fast = forward(i, naive: false), slow = forward(i, naive: true)
        XCTAssertLessThanOrEqual(maxAbsDifference(fast, slow), 1e-5 * maxAbs(slow))
        for t in 0..<shape.tokens {
            for j in shape.outFeatures..<shape.ldy { XCTAssertEqual(fast[t * shape.ldy + j], i.y[t * shape.ldy + j]) }
        }
        XCTAssertGreaterThan(maxAbsDifference(fast, i.y), 0.1, "the adapter added nothing")
        var random = TestRandom(seed: 2)
        let start = random.array(64)
        let f = backward(i, naive: false, start: start), n = backward(i, naive: true, start: start)
        for (name, a, b) in [("dx", f.dx, n.dx), ("dA", f.dA, n.dA), ("dB", f.dB, n.dB)] {
            XCTAssertLessThanOrEqual(maxAbsDifference(a, b), 1e-5 * maxAbs(b), name)
            XCTAssertGreaterThan(maxAbsDifference(b, Array(start.prefix(b.count))), 0.1, "\(name) unchanged")
        }
    }

    /// Gradients of L = sum dy * y (y the forward output) w.r.t. x, A and B against central differences.
    func testGradientsMatchFiniteDifferences() {
        let i = inputs(seed: 3)
        let g = backward(i, naive: false, start: [Float](repeating: 0, count: 64))
        func loss(_ changed: Inputs) -> Double { weightedSum(forward(changed, naive: true), i.dy) }
        checkGradient("x", at: i.x, analytic: g.dx) { var c = i; c.x = $0; return loss(c) }
        checkGradient("A", at: i.a, analytic: g.dA) { var c = i; c.a = $0; return loss(c) }
        checkGradient("B", at: i.b, analytic: g.dB) { var c = i; c.b = $0; return loss(c) }
    }
}
