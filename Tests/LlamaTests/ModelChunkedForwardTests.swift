import XCTest
import TestSupport
@testable import Llama

/// A forward without backward runs whole rows in chunks of `forwardChunkTokens` (the frozen
/// reference's small arena): the log-probs equal the one-piece forward's.
final class ModelChunkedForwardTests: XCTestCase {
    /// Plain rows and shared-prompt pairs, fp32 and fp16: chunks of one row (or pair) and of two
    /// give the one-piece log-probs within 1e-6 (fp32) / 1e-3 (fp16) relative to the largest
    /// |log-prob| (a sum over tokens: chunking changes the BLAS blocking, so an ulp or two of
    /// the sum's magnitude may differ), and the chunked model's arena holds no more tokens than one chunk.
    func testChunkedForwardEqualsOnePiece() throws {
        let config = ModelTestSupport.config(tied: true)
        let weights = ModelTestSupport.weights(ParameterLayout(config: config), seed: 51)
        for precision in Precision.allCases {
            let whole = try ModelTestSupport.model(config, precision: precision, trainable: false, weights: weights)
            whole.forwardChunkTokens = .max
            let plain = ModelTestSupport.batch(vocab: config.vocabSize, seed: 52, lengths: [6, 4, 2, 5], seqLen: 6)
            let paired = ModelSharedPromptTests.pairedBatch(vocab: config.vocabSize, seed: 53, pairs: ModelSharedPromptTests.shapes)
            let shared = try XCTUnwrap(SharedPromptRows(pairedRows: paired))
            let tolerance: Float = precision == .fp32 ? 1e-6 : 1e-3
            for rowsPerChunk in [1, 2] {
                let chunked = try ModelTestSupport.model(config, precision: precision, trainable: false, weights: weights)
                chunked.forwardChunkTokens = rowsPerChunk * plain.seqLen
                let wholePlain = whole.forward(plain, saveForBackward: false)
                XCTAssertLessThanOrEqual(maxAbsDifference(chunked.forward(plain, saveForBackward: false), wholePlain),
                                         tolerance * max(1, maxAbs(wholePlain)), "\(precision) \(rowsPerChunk)")
                XCTAssertEqual(chunked.arena?.capacity.tokens, rowsPerChunk * plain.seqLen)
                chunked.forwardChunkTokens = rowsPerChunk * shared.seqLen
                let wholeShared = whole.forward(shared, saveForBackward: false)
                XCTAssertLessThanOrEqual(maxAbsDifference(chunked.forward(shared, saveForBackward: false), wholeShared),
                                         tolerance * max(1, maxAbs(wholeShared)), "\(precision) \(rowsPerChunk) shared")
            }
        }
    }
}

extension ModelChunkedForwardTests {
    /// `logits` in row chunks equals the one-piece logits (and does not grow a smaller arena).
    func testChunkedLogitsEqualOnePiece() throws {
        let config = ModelTestSupport.config(tied: false)
        let weights = ModelTestSupport.weights(ParameterLayout(config: config), seed: 54)
        let whole = try ModelTestSupport.model(config, trainable: false, weights: weights)
        whole.forwardChunkTokens = .max
        let chunked = try ModelTestSupport.model(config, trainable: false, weights: weights)
        let batch = ModelTestSupport.batch(vocab: config.vocabSize, seed: 55, lengths: [6, 4, 2, 5], seqLen: 6)
        chunked.forwardChunkTokens = 2 * batch.seqLen
        XCTAssertLessThanOrEqual(maxAbsDifference(chunked.logits(batch), whole.logits(batch)), 1e-5)
        XCTAssertEqual(chunked.arena?.capacity.tokens, 2 * batch.seqLen)
    }
}
