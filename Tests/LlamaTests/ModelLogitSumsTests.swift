import XCTest
import Kernels
import TestSupport
@testable import Llama

/// `logitSums` (TRL's `logits/*` numerators without the full `[tokens, vocab]` logits): each
/// position's float32 sum, in vocabulary order, of the row `logits` returns, bit for bit.
final class ModelLogitSumsTests: XCTestCase {
    /// A vocabulary of two and a half LM-head panels (so a partial last panel), fp32 and fp16,
    /// tied and untied heads, in one piece and in chunks of one and two rows.
    func testLogitSumsEqualTheSumsOfTheFullLogitsBitForBit() throws {
        for tied in [false, true] {
            var config = ModelTestSupport.config(tied: tied)
            config.vocabSize = 2 * LabelLogProbs.panelRows + LabelLogProbs.panelRows / 2 + 3
            let weights = ModelTestSupport.weights(ParameterLayout(config: config), seed: 61)
            let batch = ModelTestSupport.batch(vocab: config.vocabSize, seed: 62, lengths: [6, 4, 2, 5], seqLen: 6)
            for precision in Precision.allCases {
                for chunkTokens in [Int.max, batch.seqLen, 2 * batch.seqLen] {
                    let model = try ModelTestSupport.model(config, precision: precision, trainable: false, weights: weights)
                    model.forwardChunkTokens = chunkTokens
                    let logits = model.logits(batch)
                    let expected = (0..<batch.rows * batch.seqLen).map { p -> Float in
                        var sum: Float = 0
                        for v in 0..<config.vocabSize { sum += logits[p * config.vocabSize + v] }
                        return sum
                    }
                    let sums = model.logitSums(batch)
                    XCTAssertEqual(sums.map(\.bitPattern), expected.map(\.bitPattern), "tied \(tied) \(precision) chunk \(chunkTokens)")
                    XCTAssertTrue(expected.contains { $0 != 0 }, "the logits are all zero: the test would prove nothing")
                }
            }
        }
    }
}
