import XCTest
import TestSupport
@testable import Kernels

final class AttentionTests: XCTestCase {
    let shape = Attention.Shape(rows: 3, seqLen: 5, heads: 4, kvHeads: 2, headDim: 4)
    /// Row 0 full, row 1 padded, row 2 a single token.
    let lengths = [5, 3, 1]

    func run(_ q: [Float], _ k: [Float], _ v: [Float], lengths: [Int]? = nil) -> (output: [Float], probs: [Float]) {
        var probs = [Float](repeating: 0, count: shape.probsCount)  // columns a block never sees stay as they are
        let output = [Float](repeating: .nan, count: shape.rows * shape.seqLen * shape.queryWidth).mutated { o in
            Attention.forward(q: q, k: k, v: v, lengths: lengths ?? self.lengths, probs: &probs, output: o, shape: shape)
        }
        return (output, probs)
    }

    func inputs(seed: UInt64) -> ([Float], [Float], [Float]) {
        var random = TestRandom(seed: seed)
        let n = shape.rows * shape.seqLen
        return (random.array(n * shape.queryWidth, scale: 2), random.array(n * shape.keyWidth, scale: 2),
                random.array(n * shape.keyWidth))
    }

    /// The sgemm path equals the Double oracle at every valid position (GQA, padding).
    func testForwardMatchesOracle() {
        let (q, k, v) = inputs(seed: 9)
        let (output, _) = run(q, k, v)
        let expected = Attention.forwardNaive(q: q, k: k, v: v, lengths: lengths, shape: shape)
        XCTAssertLessThanOrEqual(maxAbsDifference(output, expected), 1e-5)
    }

    /// Padded positions stay finite, and keys at t >= length never change any output.
    func testPaddingIsNeverAttendedAndStaysFinite() {
        var (q, k, v) = inputs(seed: 10)
        let (output, probs) = run(q, k, v)
        XCTAssertTrue(output.allSatisfy(\.isFinite))
        XCTAssertTrue(probs.allSatisfy(\.isFinite))
        for t in 3..<5 {  // row 1's padded keys and values
            for j in 0..<shape.keyWidth {
                k[(5 + t) * shape.keyWidth + j] = 1e4
                v[(5 + t) * shape.keyWidth + j] = -1e4
            }
        }
        let (changed, _) = run(q, k, v)
        XCTAssertEqual(output, changed)
    }

    /// dq, dk, dv equal finite differences of Σ w·output (tolerance 2e-3 + 1e-2 relative).
    func testBackwardMatchesFiniteDifferences() {
        let (q, k, v) = inputs(seed: 11)
        let (_, probs) = run(q, k, v)
        var random = TestRandom(seed: 12)
        let dOutput = random.array(shape.rows * shape.seqLen * shape.queryWidth)
        var dq = [Float](repeating: .nan, count: q.count), dk = [Float](repeating: .nan, count: k.count)
        var dv = [Float](repeating: .nan, count: v.count)
        var scratch = [Float](repeating: 0, count: shape.backwardScratchCount)
        Attention.backward(q: q, k: k, v: v, lengths: lengths, probs: probs, dOutput: dOutput,
                           dq: &dq, dk: &dk, dv: &dv, scratch: &scratch, shape: shape)
        checkGradient("dq", at: q, analytic: dq, samples: 60, step: 1e-2) { weightedSum(run($0, k, v).output, dOutput) }
        checkGradient("dk", at: k, analytic: dk, samples: 60, step: 1e-2) { weightedSum(run(q, $0, v).output, dOutput) }
        checkGradient("dv", at: v, analytic: dv, samples: 60, step: 1e-2) { weightedSum(run(q, k, $0).output, dOutput) }
        // Padded keys of row 1 get no gradient.
        for t in 3..<5 { for j in 0..<shape.keyWidth { XCTAssertEqual(dk[(5 + t) * shape.keyWidth + j], 0) } }
    }

    /// One query at a time with a growing key count (the KV-cache path) equals the batch forward.
    func testIncrementalAttendHeadMatchesBatch() {
        let (q, k, v) = inputs(seed: 13)
        let (output, _) = run(q, k, v, lengths: [5, 5, 5])
        let group = shape.heads / shape.kvHeads
        for t in 0..<shape.seqLen {
            for h in 0..<shape.heads {
                var probs = [Float](repeating: 0, count: t + 1)
                var out = [Float](repeating: 0, count: shape.headDim)
                Attention.attendHead(q: Array(q[(t * shape.queryWidth + h * shape.headDim)...]), queryStride: shape.queryWidth,
                                     queries: 1, queryStart: t,
                                     k: Array(k[((h / group) * shape.headDim)...]), v: Array(v[((h / group) * shape.headDim)...]),
                                     keyStride: shape.keyWidth, keys: t + 1, headDim: shape.headDim, scale: 0.5,
                                     probs: &probs, probsStride: t + 1, output: &out, outputStride: shape.headDim)
                let start = t * shape.queryWidth + h * shape.headDim
                XCTAssertLessThanOrEqual(maxAbsDifference(out, Array(output[start..<(start + shape.headDim)])), 1e-6)
            }
        }
    }

    /// q, k, v as column blocks of one `[tokens, Q + 2K]` buffer (the fused projection) give the
    /// same output and gradients as separate buffers; rotary with a row stride matches too.
    func testFusedInputLayoutMatchesSeparateBuffers() {
        let (q, k, v) = inputs(seed: 19)
        let n = shape.rows * shape.seqLen, qw = shape.queryWidth, kw = shape.keyWidth, width = qw + 2 * kw
        var fused = [Float](repeating: 0, count: n * width)
        for t in 0..<n {
            for j in 0..<qw { fused[t * width + j] = q[t * qw + j] }
            for j in 0..<kw { fused[t * width + qw + j] = k[t * kw + j]; fused[t * width + qw + kw + j] = v[t * kw + j] }
        }
        var fusedShape = shape
        fusedShape.inputStride = width
        var probs = [Float](repeating: 0, count: shape.probsCount)
        var output = [Float](repeating: 0, count: n * qw)
        fused.withUnsafeBufferPointer { f in
            Attention.forward(q: f.baseAddress!, k: f.baseAddress! + qw, v: f.baseAddress! + qw + kw, lengths: lengths,
                              probs: &probs, output: &output, shape: fusedShape)
        }
        let (expected, expectedProbs) = run(q, k, v)
        XCTAssertEqual(output, expected)
        var random = TestRandom(seed: 20)
        let dOutput = random.array(n * qw)
        var dq = [Float](repeating: 0, count: q.count), dk = [Float](repeating: 0, count: k.count), dv = dk
        var scratch = [Float](repeating: 0, count: shape.backwardScratchCount)
        Attention.backward(q: q, k: k, v: v, lengths: lengths, probs: expectedProbs, dOutput: dOutput,
                           dq: &dq, dk: &dk, dv: &dv, scratch: &scratch, shape: shape)
        var dFused = [Float](repeating: .nan, count: fused.count)
        fused.withUnsafeBufferPointer { f in
            dFused.withUnsafeMutableBufferPointer { d in
                Attention.backward(q: f.baseAddress!, k: f.baseAddress! + qw, v: f.baseAddress! + qw + kw, lengths: lengths,
                                   probs: probs, dOutput: dOutput, dq: d.baseAddress!, dk: d.baseAddress! + qw,
                                   dv: d.baseAddress! + qw + kw, scratch: &scratch, shape: fusedShape)
            }
        }
        for t in 0..<n {
            XCTAssertEqual(Array(dFused[(t * width)..<(t * width + qw)]), Array(dq[(t * qw)..<((t + 1) * qw)]))
            XCTAssertEqual(Array(dFused[(t * width + qw)..<(t * width + qw + kw)]), Array(dk[(t * kw)..<((t + 1) * kw)]))
            XCTAssertEqual(Array(dFused[(t * width + qw + kw)..<((t + 1) * width)]), Array(dv[(t * kw)..<((t + 1) * kw)]))
        }
        let rotary = Rotary(headDim: shape.headDim, theta: 10000, maxPositions: shape.seqLen)
        let rotatedKeys = k.mutated { rotary.forward($0, rows: shape.rows, seqLen: shape.seqLen, heads: shape.kvHeads) }
        let rotatedFused = fused.mutated {
            rotary.forward($0 + qw, rows: shape.rows, seqLen: shape.seqLen, heads: shape.kvHeads, stride: width)
        }
        for t in 0..<n {
            XCTAssertEqual(Array(rotatedFused[(t * width + qw)..<(t * width + qw + kw)]), Array(rotatedKeys[(t * kw)..<((t + 1) * kw)]))
            XCTAssertEqual(Array(rotatedFused[(t * width)..<(t * width + qw)]), Array(q[(t * qw)..<((t + 1) * qw)]))
        }
    }

    /// Two workers (one job per row and head, single-threaded BLAS inside) give exactly the
    /// single-threaded results.
    func testTwoThreadsMatchOneThread() {
        let (q, k, v) = inputs(seed: 21)
        let previous = BLAS.threads
        defer { BLAS.threads = previous }
        var random = TestRandom(seed: 22)
        let dOutput = random.array(shape.rows * shape.seqLen * shape.queryWidth)
        func both() -> [Float] {
            let (output, probs) = run(q, k, v)
            var dq = [Float](repeating: 0, count: q.count), dk = [Float](repeating: 0, count: k.count), dv = dk
            var scratch = [Float](repeating: 0, count: shape.backwardScratchCount)
            Attention.backward(q: q, k: k, v: v, lengths: lengths, probs: probs, dOutput: dOutput,
                               dq: &dq, dk: &dk, dv: &dv, scratch: &scratch, shape: shape)
            return output + dq + dk + dv
        }
        BLAS.threads = 1
        let serial = both()
        BLAS.threads = 2
        XCTAssertEqual(both(), serial)
        XCTAssertEqual(BLAS.threads, 2, "the thread count is restored after the kernel")
    }
}
