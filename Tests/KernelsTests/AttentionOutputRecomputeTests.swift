import XCTest
import TestSupport
@testable import Kernels

/// The training step keeps neither the attention output nor the softmax weights: the backward
/// kernels recompute the output (`output:`) with the weights, and every kernel runs on a
/// scratch slot per thread (`maxWorkers`) instead of one per (row, kv head) job. Both must
/// change no bit: the recomputed output equals the forward's, and the gradients equal those of
/// the per-job scratch without `output:`, at 1 and 2 threads.
final class AttentionOutputRecomputeTests: XCTestCase {
    var previousThreads = 1
    override func setUp() { previousThreads = BLAS.threads }
    override func tearDown() { BLAS.threads = previousThreads }

    func assertBitIdentical(_ a: [Float], _ b: [Float], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, what, file: file, line: line)
        XCTAssertTrue(a.contains { $0 != 0 }, "\(what): all zero proves nothing", file: file, line: line)
        let differing = zip(a, b).filter { $0.0.bitPattern != $0.1.bitPattern }.count
        XCTAssertEqual(differing, 0, "\(what): \(differing) of \(a.count) values differ", file: file, line: line)
    }

    /// Padded rows of uneven lengths (an empty one; more jobs than threads), fused q|k|v rows.
    func testPaddedRows() {
        let shape = Attention.Shape(rows: 5, seqLen: 70, heads: 6, kvHeads: 3, headDim: 8, inputStride: 6 * 8 + 2 * 3 * 8)
        let lengths = [70, 33, 1, 0, 69], n = shape.rows * shape.seqLen, width = shape.inputStride!
        let qw = shape.queryWidth, kw = shape.keyWidth
        var random = TestRandom(seed: 131)
        let qkv = random.array(n * width, scale: 2), dOutput = random.array(n * qw)
        for threads in [1, 2] {
            BLAS.threads = threads
            qkv.withUnsafeBufferPointer { buffer in
                let q = buffer.baseAddress!, k = q + qw, v = q + qw + kw
                // Before: a slot per job, the backward's output thrown away.
                var perJob = [Float](repeating: .nan, count: Attention.recomputeScratchCount(shape))
                let forward = [Float](repeating: .nan, count: n * qw).mutated { o in
                    Attention.forwardDiscardingProbs(q: q, k: k, v: v, lengths: lengths, output: o, scratch: &perJob, shape: shape)
                }
                let gradients = [Float](repeating: .nan, count: n * width).mutated { d in
                    Attention.backwardRecomputingProbs(q: q, k: k, v: v, lengths: lengths, dOutput: dOutput,
                                                       dq: d, dk: d + qw, dv: d + qw + kw, scratch: &perJob, shape: shape)
                }
                // After: a slot per thread, the backward's output kept.
                var perThread = [Float](repeating: .nan, count: Attention.recomputeScratchCount(shape, workers: threads))
                XCTAssertLessThan(perThread.count, perJob.count)
                let slotted = [Float](repeating: .nan, count: n * qw).mutated { o in
                    Attention.forwardDiscardingProbs(q: q, k: k, v: v, lengths: lengths, output: o, scratch: &perThread,
                                                     shape: shape, maxWorkers: threads)
                }
                var recomputed = [Float](repeating: .nan, count: n * qw)
                let slottedGradients = [Float](repeating: .nan, count: n * width).mutated { d in
                    Attention.backwardRecomputingProbs(q: q, k: k, v: v, lengths: lengths, dOutput: dOutput,
                                                       dq: d, dk: d + qw, dv: d + qw + kw, scratch: &perThread, shape: shape,
                                                       output: &recomputed, maxWorkers: threads)
                }
                assertBitIdentical(slotted, forward, "forward output, \(threads) threads")
                assertBitIdentical(recomputed, forward, "backward's recomputed output, \(threads) threads")
                assertBitIdentical(slottedGradients, gradients, "dq|dk|dv, \(threads) threads")
            }
        }
    }

    /// Packed shared-prompt pairs (an all-prefix rejected row, no prefix at all) with padded
    /// positions, whose recomputed output must be zero as the forward's.
    func testSharedPrompt() {
        let segments = [SharedPromptSegments(promptLength: 20, chosenLength: 41, rejectedLength: 57),
                        SharedPromptSegments(promptLength: 30, chosenLength: 45, rejectedLength: 30),
                        SharedPromptSegments(promptLength: 0, chosenLength: 17, rejectedLength: 23)]
        let seqLen = segments.map(\.packedLength).max()! + 3
        let shape = Attention.Shape(rows: segments.count, seqLen: seqLen, heads: 4, kvHeads: 2, headDim: 8)
        let n = shape.rows * seqLen, qw = shape.queryWidth, kw = shape.keyWidth
        var random = TestRandom(seed: 132)
        let q = random.array(n * qw, scale: 2), k = random.array(n * kw, scale: 2), v = random.array(n * kw)
        let dOutput = random.array(n * qw)
        func scratchCount(_ workers: Int?) -> Int {
            guard let workers else { return SharedPromptAttention.scratchCount(pairs: shape.rows, seqLen: seqLen, kvHeads: 2, headDim: 8) }
            return SharedPromptAttention.scratchCount(pairs: shape.rows, seqLen: seqLen, kvHeads: 2, headDim: 8, workers: workers)
        }
        for threads in [1, 2] {
            BLAS.threads = threads
            var perJob = [Float](repeating: .nan, count: scratchCount(nil))
            let forward = [Float](repeating: .nan, count: n * qw).mutated { o in
                SharedPromptAttention.forward(q: q, k: k, v: v, segments: segments, output: o, scratch: &perJob, shape: shape)
            }
            var dk = [Float](repeating: .nan, count: k.count), dv = dk
            let dq = [Float](repeating: .nan, count: q.count).mutated { d in
                SharedPromptAttention.backward(q: q, k: k, v: v, segments: segments, dOutput: dOutput,
                                               dq: d, dk: &dk, dv: &dv, scratch: &perJob, shape: shape)
            }
            var perThread = [Float](repeating: .nan, count: scratchCount(threads))
            XCTAssertLessThan(perThread.count, perJob.count)
            let slotted = [Float](repeating: .nan, count: n * qw).mutated { o in
                SharedPromptAttention.forward(q: q, k: k, v: v, segments: segments, output: o, scratch: &perThread,
                                              shape: shape, maxWorkers: threads)
            }
            var recomputed = [Float](repeating: .nan, count: n * qw)
            var slottedDK = [Float](repeating: .nan, count: k.count), slottedDV = slottedDK
            let slottedDQ = [Float](repeating: .nan, count: q.count).mutated { d in
                SharedPromptAttention.backward(q: q, k: k, v: v, segments: segments, dOutput: dOutput,
                                               dq: d, dk: &slottedDK, dv: &slottedDV, scratch: &perThread, shape: shape,
                                               output: &recomputed, maxWorkers: threads)
            }
            assertBitIdentical(slotted, forward, "forward output, \(threads) threads")
            assertBitIdentical(recomputed, forward, "backward's recomputed output, \(threads) threads")
            for (name, a, b) in [("dq", slottedDQ, dq), ("dk", slottedDK, dk), ("dv", slottedDV, dv)] {
                assertBitIdentical(a, b, "\(name), \(threads) threads")
            }
        }
    }
}
