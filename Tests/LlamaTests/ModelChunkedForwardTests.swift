import XCTest
import TestSupport
import Kernels
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

/// The layer-major chunked forward (LlamaModel+ChunkedForward.swift: every chunk through a layer
/// before the next layer, each LM-head panel over every chunk) against the chunks run one after
/// another, each as a forward of its own (what the chunked forward did before): bit-identical
/// log-probs for plain rows and shared-prompt pairs, fp32 and fp16, 1 and 2 threads; under fp16
/// every layer and LM-head panel converted once per forward; the arena at chunk size but for the
/// whole batch's stream.
final class ModelLayerMajorForwardTests: XCTestCase {
    /// The chunks' log-probs, each chunk run alone through `forward(StackInput)` (whole batch layout).
    func chunkByChunk(_ model: LlamaModel, _ input: StackInput, rowsPerChunk: Int) -> [Float] {
        model.forwardChunkTokens = .max
        var result = [Float](repeating: 0, count: input.outputCount)
        for start in stride(from: 0, to: input.rows, by: rowsPerChunk) {
            let chunk = input.rows(start..<min(input.rows, start + rowsPerChunk), heads: model.config.numAttentionHeads)
            let part = model.forward(chunk, saveForBackward: false)
            for p in chunk.outputIndices { result[p] = part[p] }
        }
        return result
    }

    /// Wide enough for the kernels to split over 2 threads; `narrowProjections` makes the idle
    /// gate|up memory too small for even one chunk's LM-head inputs (the arena's own buffer then).
    static func config(narrowProjections: Bool) -> LlamaConfig {
        var c = ModelTestSupport.config(tied: !narrowProjections, layers: 2)
        c.hiddenSize = 48; c.intermediateSize = narrowProjections ? 8 : 96
        c.numAttentionHeads = narrowProjections ? 2 : 4; c.numKeyValueHeads = narrowProjections ? 1 : 2; c.headDim = 8
        c.vocabSize = LabelLogProbs.panelRows + 40
        c.maxPositionEmbeddings = 64
        return c
    }

    func testLayerMajorEqualsChunkByChunk() throws {
        let previous = BLAS.threads
        defer { BLAS.threads = previous }
        for threads in [1, 2] {
            BLAS.threads = threads
            for narrow in [false, true] {
                let c = Self.config(narrowProjections: narrow)
                let weights = ModelTestSupport.weights(ParameterLayout(config: c), seed: 81, scale: 0.2)
                let plain = ModelTestSupport.batch(vocab: c.vocabSize, seed: 82, lengths: [40, 33, 12, 40, 27], seqLen: 40)
                let paired = ModelSharedPromptTests.pairedBatch(vocab: c.vocabSize, seed: 83, pairs: ModelSharedPromptTests.shapes)
                let shared = try XCTUnwrap(SharedPromptRows(pairedRows: paired))
                for precision in Precision.allCases {
                    let label = "\(precision), \(threads) threads, narrow projections \(narrow)"
                    let reference = try ModelTestSupport.model(c, precision: precision, trainable: false, weights: weights)
                    for (name, input) in [("plain", StackInput(plain)), ("shared", StackInput(shared, heads: c.numAttentionHeads))] {
                        for rowsPerChunk in [1, 2] {
                            let model = try ModelTestSupport.model(c, precision: precision, trainable: false, weights: weights)
                            model.forwardChunkTokens = rowsPerChunk * input.seqLen
                            let before = model.conversionCounts
                            let actual = model.forward(input, saveForBackward: false)
                            let expected = chunkByChunk(reference, input, rowsPerChunk: rowsPerChunk)
                            XCTAssertTrue(expected.contains { $0 != 0 }, "zero log-probs would prove nothing")
                            XCTAssertEqual(actual.map(\.bitPattern), expected.map(\.bitPattern), "\(label), \(name), \(rowsPerChunk) rows per chunk")
                            let arena = try XCTUnwrap(model.arena)
                            XCTAssertEqual(arena.capacity.tokens, rowsPerChunk * input.seqLen, label)
                            XCTAssertEqual(arena.capacity.streamTokens, input.tokens, label)
                            if precision == .fp16 {
                                // Each layer once; each of the 2 panels once per LM-head group: all chunks in
                                // one when the idle memory holds their inputs; narrow, the plain rows' chunks
                                // (1 or 2 rows of up to 39 labelled positions) each need one of their own.
                                let chunks = input.rows.quotient(dividingBy: rowsPerChunk)
                                let panels = model.conversionCounts.headPanels - before.headPanels
                                XCTAssertEqual(model.conversionCounts.layers - before.layers, c.numHiddenLayers, label)
                                if !narrow {
                                    XCTAssertEqual(panels, 2, "\(label), \(name)")
                                } else if name == "plain" {
                                    XCTAssertEqual(panels, 2 * chunks, label)
                                } else {
                                    XCTAssertTrue((2...(2 * chunks)).contains(panels), "\(label), shared: \(panels) panels")
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

private extension Int {
    /// Rounded up.
    func quotient(dividingBy d: Int) -> Int { (self + d - 1) / d }
}
