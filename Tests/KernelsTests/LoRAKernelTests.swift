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

/// The stacked path (A's adjacent, one product over the shared input) against the naive
/// oracle applied to each branch.
final class LoRAStackedKernelTests: XCTestCase {
    func testStackedEqualsTheOraclePerBranch() {
        let tokens = 5, inFeatures = 7, rank = 2, scale: Float = 1.3
        let outs = [6, 3, 3], ldy = 12, columns = [0, 6, 9], bOffsets = [0, 12, 18]  // a q|k|v-like row of 12 columns
        var random = TestRandom(seed: 11)
        let x = random.array(tokens * inFeatures), aStack = random.array(3 * rank * inFeatures)
        let bFlat = random.array(12 * rank), y0 = random.array(tokens * ldy), dy = random.array(tokens * ldy)
        let dx0 = random.array(tokens * inFeatures)
        // Stacked, in buffers that outlive the calls.
        let b = UnsafeMutableBufferPointer<Float>.allocate(capacity: bFlat.count); _ = b.initialize(from: bFlat)
        let y = UnsafeMutableBufferPointer<Float>.allocate(capacity: y0.count); _ = y.initialize(from: y0)
        let dyBuffer = UnsafeMutableBufferPointer<Float>.allocate(capacity: dy.count); _ = dyBuffer.initialize(from: dy)
        let dB = UnsafeMutableBufferPointer<Float>.allocate(capacity: bFlat.count); dB.initialize(repeating: 0)
        defer { b.deallocate(); y.deallocate(); dyBuffer.deallocate(); dB.deallocate() }
        var u = [Float](repeating: 0, count: tokens * 3 * rank), du = u
        var dx = dx0, dA = [Float](repeating: 0, count: aStack.count)
        let forward = (0..<3).map { LoRALinear.Branch(b: UnsafePointer(b.baseAddress! + bOffsets[$0]), outFeatures: outs[$0],
                                                      y: y.baseAddress! + columns[$0], ldy: ldy) }
        LoRALinear.forwardStacked(x: x, aStack: aStack, branches: forward, u: &u, tokens: tokens, inFeatures: inFeatures, rank: rank, scale: scale)
        let backward = (0..<3).map { LoRALinear.Branch(b: UnsafePointer(b.baseAddress! + bOffsets[$0]), outFeatures: outs[$0],
                                                       y: dyBuffer.baseAddress! + columns[$0], ldy: ldy, dB: dB.baseAddress! + bOffsets[$0]) }
        LoRALinear.backwardStacked(x: x, aStack: aStack, branches: backward, dx: &dx, dAStack: &dA, u: &u, du: &du,
                                   tokens: tokens, inFeatures: inFeatures, rank: rank, scale: scale)
        // The oracle, one branch at a time.
        var yRef = y0, dxRef = dx0, dARef = [Float](repeating: 0, count: aStack.count), dBRef = [Float](repeating: 0, count: bFlat.count)
        for j in 0..<3 {
            let shape = LoRALinear.Shape(tokens: tokens, inFeatures: inFeatures, outFeatures: outs[j], rank: rank, ldy: ldy, scale: scale)
            let a = Array(aStack[(j * rank * inFeatures)..<((j + 1) * rank * inFeatures)])
            let bj = Array(bFlat[bOffsets[j]..<(bOffsets[j] + outs[j] * rank)])
            var dAj = [Float](repeating: 0, count: a.count), dBj = [Float](repeating: 0, count: bj.count)
            yRef.withUnsafeMutableBufferPointer { LoRALinear.forwardNaive(x: x, a: a, b: bj, y: $0.baseAddress! + columns[j], shape: shape) }
            dy.withUnsafeBufferPointer { d in
                LoRALinear.backwardNaive(x: x, a: a, b: bj, dy: d.baseAddress! + columns[j], dx: &dxRef, dA: &dAj, dB: &dBj, shape: shape)
            }
            for i in dAj.indices { dARef[j * rank * inFeatures + i] = dAj[i] }
            for i in dBj.indices { dBRef[bOffsets[j] + i] = dBj[i] }
        }
        XCTAssertLessThanOrEqual(maxAbsDifference(Array(y), yRef), 1e-5 * maxAbs(yRef))
        XCTAssertLessThanOrEqual(maxAbsDifference(dx, dxRef), 1e-5 * maxAbs(dxRef))
        XCTAssertLessThanOrEqual(maxAbsDifference(dA, dARef), 1e-5 * maxAbs(dARef))
        XCTAssertLessThanOrEqual(maxAbsDifference(Array(dB), dBRef), 1e-5 * maxAbs(dBRef))
        XCTAssertGreaterThan(maxAbsDifference(Array(y), y0), 0.1, "the adapters added nothing")
    }
}
