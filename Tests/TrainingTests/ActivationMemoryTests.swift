import Kernels
@testable import Llama
import XCTest

@testable import Training

/// The estimate's activations are what the arenas allocate: `MemoryGeometry.policyArenaBytes`
/// against the policy's `ActivationArena` after a saving forward of 2 pairs (4 rows, every
/// position labelled, as the estimate assumes), and `forwardArenaBytes` against a frozen model's
/// forward in row chunks; fp32 and fp16, with and without checkpointing, at 2 BLAS threads.
final class ActivationMemoryTests: XCTestCase {
    static let config = LlamaConfig(hiddenSize: 16, intermediateSize: 40, numHiddenLayers: 3, numAttentionHeads: 4,
                                    numKeyValueHeads: 2, vocabSize: 40, maxPositionEmbeddings: 64, eosTokenId: 39, padTokenId: 0)

    /// `count` full rows of `seqLen` tokens, every position labelled.
    func rows(_ count: Int, seqLen: Int) -> TokenRows {
        let n = count * seqLen
        return TokenRows(rows: count, seqLen: seqLen, inputIds: (0..<n).map { Int32(1 + $0 % 38) },
                         targetIds: (0..<n).map { Int32(1 + ($0 * 7) % 38) }, lengths: Array(repeating: seqLen, count: count))
    }

    func testEstimateIsWhatTheArenasAllocate() throws {
        let previous = BLAS.threads
        BLAS.threads = 2
        defer { BLAS.threads = previous }
        let seqLen = 24, pairs = 2
        for precision in Precision.allCases {
            for checkpointing in [false, true] {
                let policy = try LlamaModel(config: Self.config, precision: precision, trainable: true)
                policy.gradientCheckpointing = checkpointing
                _ = policy.forward(rows(2 * pairs, seqLen: seqLen), saveForBackward: true)
                var geometry = MemoryGeometry(config: Self.config, precision: precision, batchPairs: pairs, longestRow: seqLen,
                                              gradientCheckpointing: checkpointing, optimizerStateCount: 0, reference: .model)
                geometry.threads = 2
                let arena = try XCTUnwrap(policy.arena)
                XCTAssertEqual(arena.capacity.labelled, 2 * pairs * seqLen)
                XCTAssertEqual(geometry.policyArenaBytes, arena.byteCount, "\(precision), checkpointing \(checkpointing)")

                // A frozen model's forward runs two rows at a time.
                let frozen = try LlamaModel(config: Self.config, precision: precision, trainable: false)
                frozen.forwardChunkTokens = 2 * seqLen
                geometry.forwardChunkTokens = 2 * seqLen
                _ = frozen.forward(rows(2 * pairs, seqLen: seqLen), saveForBackward: false)
                let chunkArena = try XCTUnwrap(frozen.arena)
                XCTAssertEqual(chunkArena.capacity.tokens, 2 * seqLen)
                XCTAssertEqual(geometry.forwardArenaBytes, chunkArena.byteCount, "\(precision) frozen")
            }
        }
    }
}
