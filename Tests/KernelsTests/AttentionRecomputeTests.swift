import XCTest
import TestSupport
@testable import Kernels

/// Attention without saved softmax weights (plain rows) and over packed shared-prompt rows,
/// against the saved-probs kernels on the plain rows.
final class AttentionRecomputeTests: XCTestCase {
    /// Rows 0 full, 1 padded, 2 a single token, 3 empty; GQA 4/2, head width 4.
    let shape = Attention.Shape(rows: 4, seqLen: 5, heads: 4, kvHeads: 2, headDim: 4)
    let lengths = [5, 3, 1, 0]

    /// forwardDiscardingProbs / backwardRecomputingProbs equal forward / backward (saved probs):
    /// outputs and dq, dk, dv within 1e-6 x the largest magnitude.
    func testRecomputingEqualsSavedProbs() {
        var random = TestRandom(seed: 71)
        let n = shape.rows * shape.seqLen
        let q = random.array(n * shape.queryWidth, scale: 2), k = random.array(n * shape.keyWidth, scale: 2)
        let v = random.array(n * shape.keyWidth), dOutput = random.array(n * shape.queryWidth)
        var probs = [Float](repeating: 0, count: shape.probsCount)
        var saved = [Float](repeating: .nan, count: n * shape.queryWidth)
        Attention.forward(q: q, k: k, v: v, lengths: lengths, probs: &probs, output: &saved, shape: shape)
        var scratch = [Float](repeating: .nan, count: Attention.recomputeScratchCount(shape))
        var recomputed = [Float](repeating: .nan, count: n * shape.queryWidth)
        Attention.forwardDiscardingProbs(q: q, k: k, v: v, lengths: lengths, output: &recomputed, scratch: &scratch, shape: shape)
        XCTAssertLessThanOrEqual(maxAbsDifference(recomputed, saved), 1e-6 * maxAbs(saved))

        var dq = [Float](repeating: .nan, count: q.count), dk = [Float](repeating: .nan, count: k.count), dv = dk
        var backwardScratch = [Float](repeating: 0, count: shape.backwardScratchCount)
        Attention.backward(q: q, k: k, v: v, lengths: lengths, probs: probs, dOutput: dOutput,
                           dq: &dq, dk: &dk, dv: &dv, scratch: &backwardScratch, shape: shape)
        var dq2 = [Float](repeating: .nan, count: q.count), dk2 = [Float](repeating: .nan, count: k.count), dv2 = dk2
        Attention.backwardRecomputingProbs(q: q, k: k, v: v, lengths: lengths, dOutput: dOutput,
                                           dq: &dq2, dk: &dk2, dv: &dv2, scratch: &scratch, shape: shape)
        for (name, a, b) in [("dq", dq2, dq), ("dk", dk2, dk), ("dv", dv2, dv)] {
            XCTAssertLessThanOrEqual(maxAbsDifference(a, b), 1e-6 * maxAbs(b), name)
        }
    }

    /// Shared-prompt attention over packed pairs equals plain attention on the unpacked chosen and
    /// rejected rows: outputs at every valid position, dq, and dk/dv where the prefix's gradient is
    /// the sum of both rows' (within 1e-5 x the largest magnitude). Pairs: a prompt with two
    /// completions, a rejected row that is all prefix, and no shared prefix at all.
    func testSharedPromptEqualsPlainRows() {
        let segments = [SharedPromptSegments(promptLength: 2, chosenLength: 4, rejectedLength: 5),
                        SharedPromptSegments(promptLength: 3, chosenLength: 5, rejectedLength: 3),
                        SharedPromptSegments(promptLength: 0, chosenLength: 2, rejectedLength: 3)]
        let S = segments.map(\.packedLength).max()!, T = 5, pairs = segments.count
        let heads = 4, kvHeads = 2, hd = 4, qw = heads * hd, kw = kvHeads * hd
        var random = TestRandom(seed: 72)
        // Plain rows: chosen 0..<B, rejected B..<2B; the rejected row copies the chosen row's prefix.
        var q = random.array(2 * pairs * T * qw, scale: 2), k = random.array(2 * pairs * T * kw, scale: 2), v = random.array(2 * pairs * T * kw)
        for (i, seg) in segments.enumerated() {
            for t in 0..<seg.promptLength {
                for j in 0..<qw { q[((pairs + i) * T + t) * qw + j] = q[(i * T + t) * qw + j] }
                for j in 0..<kw {
                    k[((pairs + i) * T + t) * kw + j] = k[(i * T + t) * kw + j]
                    v[((pairs + i) * T + t) * kw + j] = v[(i * T + t) * kw + j]
                }
            }
        }
        let plainLengths = segments.map(\.chosenLength) + segments.map(\.rejectedLength)
        let plainShape = Attention.Shape(rows: 2 * pairs, seqLen: T, heads: heads, kvHeads: kvHeads, headDim: hd)
        var dOutput = random.array(2 * pairs * T * qw)
        // Padded plain queries attend the valid keys; the packed rows have no such queries.
        for (row, length) in plainLengths.enumerated() {
            for t in length..<T { for j in 0..<qw { dOutput[(row * T + t) * qw + j] = 0 } }
        }
        var probs = [Float](repeating: 0, count: plainShape.probsCount)
        var output = [Float](repeating: 0, count: 2 * pairs * T * qw)
        Attention.forward(q: q, k: k, v: v, lengths: plainLengths, probs: &probs, output: &output, shape: plainShape)
        var dq = [Float](repeating: 0, count: q.count), dk = [Float](repeating: 0, count: k.count), dv = dk
        var plainScratch = [Float](repeating: 0, count: plainShape.backwardScratchCount)
        Attention.backward(q: q, k: k, v: v, lengths: plainLengths, probs: probs, dOutput: dOutput,
                           dq: &dq, dk: &dk, dv: &dv, scratch: &plainScratch, shape: plainShape)

        // Packed: plain row index of packed position t of pair i (chosen part, then rejected part).
        func plainIndex(_ i: Int, _ t: Int) -> (chosen: Int?, rejected: Int?) {
            let seg = segments[i]
            if t < seg.promptLength { return (i * T + t, (pairs + i) * T + t) }
            if t < seg.chosenLength { return (i * T + t, nil) }
            if t < seg.packedLength { return (nil, (pairs + i) * T + seg.promptLength + t - seg.chosenLength) }
            return (nil, nil)
        }
        var pq = [Float](repeating: 0, count: pairs * S * qw), pk = [Float](repeating: 0, count: pairs * S * kw), pv = pk
        var pdOutput = [Float](repeating: 0, count: pairs * S * qw)
        for i in 0..<pairs {
            for t in 0..<S {
                let (c, r) = plainIndex(i, t)
                guard let source = c ?? r else { continue }
                for j in 0..<qw { pq[(i * S + t) * qw + j] = q[source * qw + j] }
                for j in 0..<kw { pk[(i * S + t) * kw + j] = k[source * kw + j]; pv[(i * S + t) * kw + j] = v[source * kw + j] }
                // The prefix's output gradient is the sum of both rows'.
                for j in 0..<qw { pdOutput[(i * S + t) * qw + j] = (c.map { dOutput[$0 * qw + j] } ?? 0) + (r.map { dOutput[$0 * qw + j] } ?? 0) }
            }
        }
        let packedShape = Attention.Shape(rows: pairs, seqLen: S, heads: heads, kvHeads: kvHeads, headDim: hd)
        var scratch = [Float](repeating: .nan, count: SharedPromptAttention.scratchCount(pairs: pairs, seqLen: S, kvHeads: kvHeads, headDim: hd))
        var pOutput = [Float](repeating: .nan, count: pairs * S * qw)
        SharedPromptAttention.forward(q: pq, k: pk, v: pv, segments: segments, output: &pOutput, scratch: &scratch, shape: packedShape)
        var pdq = [Float](repeating: .nan, count: pq.count), pdk = [Float](repeating: .nan, count: pk.count), pdv = pdk
        SharedPromptAttention.backward(q: pq, k: pk, v: pv, segments: segments, dOutput: pdOutput,
                                       dq: &pdq, dk: &pdk, dv: &pdv, scratch: &scratch, shape: packedShape)
        let tolerance: Float = 1e-5 * max(maxAbs(output), maxAbs(dq), maxAbs(dk), maxAbs(dv))
        for i in 0..<pairs {
            for t in 0..<S {
                let (c, r) = plainIndex(i, t), p = i * S + t
                guard let source = c ?? r else {
                    for j in 0..<qw { XCTAssertEqual(pOutput[p * qw + j], 0); XCTAssertEqual(pdq[p * qw + j], 0) }
                    continue
                }
                for j in 0..<qw {
                    XCTAssertEqual(pOutput[p * qw + j], output[source * qw + j], accuracy: tolerance, "output \(i) \(t)")
                    let expected = (c.map { dq[$0 * qw + j] } ?? 0) + (r.map { dq[$0 * qw + j] } ?? 0)
                    XCTAssertEqual(pdq[p * qw + j], expected, accuracy: tolerance, "dq \(i) \(t)")
                }
                for j in 0..<kw {
                    let expectedK = (c.map { dk[$0 * kw + j] } ?? 0) + (r.map { dk[$0 * kw + j] } ?? 0)
                    let expectedV = (c.map { dv[$0 * kw + j] } ?? 0) + (r.map { dv[$0 * kw + j] } ?? 0)
                    XCTAssertEqual(pdk[p * kw + j], expectedK, accuracy: tolerance, "dk \(i) \(t)")
                    XCTAssertEqual(pdv[p * kw + j], expectedV, accuracy: tolerance, "dv \(i) \(t)")
                }
            }
        }
    }
}
