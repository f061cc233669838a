import XCTest
import TestSupport
@testable import Kernels

final class LabelLogProbsTests: XCTestCase {
    let hiddenSize = 6, vocab = 11

    func run(_ hidden: [Float], _ weight: [Float], _ targets: [Int32]) -> (logps: [Float], lse: [Float]) {
        var lse = [Float](repeating: 0, count: targets.count)
        var scratch = [Float](repeating: 0, count: LabelLogProbs.chunkRows * vocab)
        let logps = [Float](repeating: 0, count: targets.count).mutated { out in
            LabelLogProbs.forward(hidden: hidden, weight: weight, targets: targets, logps: out, logSumExp: &lse,
                                  positions: targets.count, hiddenSize: hiddenSize, vocab: vocab, scratch: &scratch)
        }
        return (logps, lse)
    }

    /// Chunked float32 log-softmax gather equals the Double full-logits oracle, across more
    /// positions than one chunk.
    func testForwardMatchesOracleAcrossChunks() {
        var random = TestRandom(seed: 14)
        let positions = LabelLogProbs.chunkRows + 9
        let hidden = random.array(positions * hiddenSize, scale: 3), weight = random.array(vocab * hiddenSize)
        let targets = (0..<positions).map { Int32($0 % vocab) }
        let (logps, _) = run(hidden, weight, targets)
        let expected = LabelLogProbs.forwardNaive(hidden: hidden, weight: weight, targets: targets, hiddenSize: hiddenSize, vocab: vocab)
        XCTAssertLessThanOrEqual(maxAbsDifference(logps, expected), 2e-5)
        XCTAssertTrue(logps.allSatisfy { $0 < 0 })
    }

    /// dHidden and dWeight equal finite differences of Σ w·logps.
    func testBackwardMatchesFiniteDifferences() {
        var random = TestRandom(seed: 15)
        let targets: [Int32] = [3, 0, 10, 3]
        let hidden = random.array(targets.count * hiddenSize), weight = random.array(vocab * hiddenSize)
        let dLogps = random.array(targets.count)
        let (_, lse) = run(hidden, weight, targets)
        var dHidden = [Float](repeating: .nan, count: hidden.count), dWeight = [Float](repeating: 0, count: weight.count)
        var scratch = [Float](repeating: 0, count: LabelLogProbs.chunkRows * vocab)
        LabelLogProbs.backward(hidden: hidden, weight: weight, targets: targets, logSumExp: lse, dLogps: dLogps,
                               dHidden: &dHidden, dWeight: &dWeight, positions: targets.count, hiddenSize: hiddenSize,
                               vocab: vocab, scratch: &scratch)
        checkGradient("dHidden", at: hidden, analytic: dHidden, samples: hidden.count, step: 1e-3) {
            weightedSum(run($0, weight, targets).logps, dLogps)
        }
        checkGradient("dWeight", at: weight, analytic: dWeight, samples: 40, step: 1e-3) {
            weightedSum(run(hidden, $0, targets).logps, dLogps)
        }
    }
}

/// The vocabulary-panel kernels (the LM head supplied a panel at a time) against the whole-head ones.
final class LabelLogProbsPanelTests: XCTestCase {
    /// More vocabulary rows than two panels and more positions than one chunk: log-probs,
    /// log-sum-exp, dHidden and dWeight agree with the whole-head kernels within 2e-5 (relative to
    /// the largest magnitude), and every panel is requested in order, each exactly once per pass.
    func testPanelledMatchesWholeHead() {
        let hiddenSize = 8, vocab = 2 * LabelLogProbs.panelRows + 37, positions = LabelLogProbs.panelPositions + 5
        var random = TestRandom(seed: 16)
        let hidden = random.array(positions * hiddenSize, scale: 2), weight = random.array(vocab * hiddenSize)
        let targets = (0..<positions).map { Int32(($0 * 97) % vocab) }
        let dLogps = random.array(positions)
        var wholeLogps = [Float](repeating: 0, count: positions), wholeLSE = wholeLogps
        var wholeScratch = [Float](repeating: 0, count: LabelLogProbs.chunkRows * vocab)
        LabelLogProbs.forward(hidden: hidden, weight: weight, targets: targets, logps: &wholeLogps, logSumExp: &wholeLSE,
                              positions: positions, hiddenSize: hiddenSize, vocab: vocab, scratch: &wholeScratch)
        var wholeDHidden = [Float](repeating: 0, count: hidden.count), wholeDWeight = [Float](repeating: 0, count: weight.count)
        LabelLogProbs.backward(hidden: hidden, weight: weight, targets: targets, logSumExp: wholeLSE, dLogps: dLogps,
                               dHidden: &wholeDHidden, dWeight: &wholeDWeight, positions: positions, hiddenSize: hiddenSize,
                               vocab: vocab, scratch: &wholeScratch)

        var panels: [Range<Int>] = []
        var panelCopy = [Float](repeating: 0, count: LabelLogProbs.panelRows * hiddenSize)
        var scratch = [Float](repeating: 0, count: LabelLogProbs.panelScratchCount)
        var logps = [Float](repeating: 0, count: positions), lse = logps
        var dHidden = [Float](repeating: .nan, count: hidden.count), dWeight = [Float](repeating: 0, count: weight.count)
        panelCopy.withUnsafeMutableBufferPointer { copy in
            // A copy, as the binary16 path makes: the kernel must not read past the panel.
            let panel: (Range<Int>) -> UnsafePointer<Float> = { range in
                panels.append(range)
                copy.update(repeating: .nan)
                for i in 0..<(range.count * hiddenSize) { copy[i] = weight[range.lowerBound * hiddenSize + i] }
                return UnsafePointer(copy.baseAddress!)
            }
            LabelLogProbs.forwardPanelled(hidden: hidden, weightPanel: panel, targets: targets, logps: &logps, logSumExp: &lse,
                                          positions: positions, hiddenSize: hiddenSize, vocab: vocab, scratch: &scratch)
            LabelLogProbs.backwardPanelled(hidden: hidden, weightPanel: panel, targets: targets, logSumExp: lse, dLogps: dLogps,
                                           dHidden: &dHidden, dWeight: &dWeight, positions: positions, hiddenSize: hiddenSize,
                                           vocab: vocab, scratch: &scratch)
        }
        let expectedPanels = [0..<512, 512..<1024, 1024..<vocab]
        XCTAssertEqual(panels, expectedPanels + expectedPanels)
        XCTAssertLessThanOrEqual(maxAbsDifference(logps, wholeLogps), 2e-5 * maxAbs(wholeLogps))
        XCTAssertLessThanOrEqual(maxAbsDifference(lse, wholeLSE), 2e-5 * maxAbs(wholeLSE))
        XCTAssertLessThanOrEqual(maxAbsDifference(dHidden, wholeDHidden), 2e-5 * maxAbs(wholeDHidden))
        XCTAssertLessThanOrEqual(maxAbsDifference(dWeight, wholeDWeight), 2e-5 * maxAbs(wholeDWeight))
    }
}

extension LabelLogProbsPanelTests {
    /// `segments`: several batches' positions side by side, each multiplied in the position chunks
    /// it would be alone (the layer-major forward's LM head over its row chunks): log-probs and
    /// log-sum-exp bit-identical to one call per segment, with every panel requested once in all,
    /// at 1 and 2 threads, segments longer than a chunk, empty and short ones included.
    func testSegmentsEqualOneCallPerSegment() {
        let hiddenSize = 8, vocab = LabelLogProbs.panelRows + 29
        let segments = [0..<(LabelLogProbs.panelPositions + 30), 286..<286, 286..<297, 297..<600]
        let positions = segments.last!.upperBound
        var random = TestRandom(seed: 17)
        let hidden = random.array(positions * hiddenSize, scale: 2), weight = random.array(vocab * hiddenSize)
        let targets = (0..<positions).map { Int32(($0 * 131) % vocab) }
        let stored = UnsafeMutableBufferPointer<Float>.allocate(capacity: weight.count)
        _ = stored.initialize(from: weight)
        let previous = BLAS.threads
        defer { BLAS.threads = previous; stored.deallocate() }
        for threads in [1, 2] {
            BLAS.threads = threads
            var requests = 0
            let panel: (Range<Int>) -> UnsafePointer<Float> = { range in
                requests += 1
                return UnsafePointer(stored.baseAddress! + range.lowerBound * hiddenSize)
            }
            var scratch = [Float](repeating: 0, count: LabelLogProbs.panelScratchCount)
            var logps = [Float](repeating: .nan, count: positions), lse = logps
            LabelLogProbs.forwardPanelled(hidden: hidden, weightPanel: panel, targets: targets, logps: &logps, logSumExp: &lse,
                                          positions: positions, hiddenSize: hiddenSize, vocab: vocab, scratch: &scratch,
                                          segments: segments)
            XCTAssertEqual(requests, 2, "each panel once for all segments")
            var aloneLogps = [Float](repeating: .nan, count: positions), aloneLSE = aloneLogps
            for segment in segments where !segment.isEmpty {
                let s = segment.lowerBound, n = segment.count
                hidden.withUnsafeBufferPointer { h in
                    targets.withUnsafeBufferPointer { t in
                        aloneLogps.withUnsafeMutableBufferPointer { lp in
                            aloneLSE.withUnsafeMutableBufferPointer { e in
                                LabelLogProbs.forwardPanelled(hidden: h.baseAddress! + s * hiddenSize, weightPanel: panel,
                                                              targets: t.baseAddress! + s, logps: lp.baseAddress! + s,
                                                              logSumExp: e.baseAddress! + s, positions: n, hiddenSize: hiddenSize,
                                                              vocab: vocab, scratch: &scratch)
                            }
                        }
                    }
                }
            }
            XCTAssertTrue(aloneLogps.allSatisfy { $0 < 0 })
            XCTAssertEqual(logps.map(\.bitPattern), aloneLogps.map(\.bitPattern), "\(threads) threads")
            XCTAssertEqual(lse.map(\.bitPattern), aloneLSE.map(\.bitPattern), "\(threads) threads")
        }
    }
}
