import XCTest
import TestSupport
#if canImport(Glibc)
import Glibc
#endif
@testable import Llama

/// `releaseForwardScratch`: a forward-only model (the frozen reference) gives its arena's and
/// fp16 conversion scratch's pages back between forwards, and the next forward is unchanged.
final class ModelScratchReleaseTests: XCTestCase {
    /// Resident pages of `bytes` at `pointer` (mincore).
    func residentPages(_ pointer: UnsafeMutableRawPointer, bytes: Int) -> Int {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        var flags = [UInt8](repeating: 0, count: (bytes + page - 1) / page)
        XCTAssertEqual(mincore(pointer, bytes, &flags), 0)
        return flags.filter { $0 & 1 != 0 }.count
    }

    /// A mapped buffer (4 MiB) is resident once written and not after `releasePages`, reads as
    /// zeros, and takes new values; a heap buffer (under 2 MiB) is left as it is.
    func testReleasePagesDropsAMappedBufferAndKeepsAHeapOne() {
        let mapped = FloatBuffer(count: 1 << 20), bytes = (1 << 20) * 4
        for i in 0..<mapped.count { mapped.pointer[i] = Float(i % 7) + 1 }
        XCTAssertEqual(residentPages(UnsafeMutableRawPointer(mapped.pointer), bytes: bytes), bytes / Int(sysconf(Int32(_SC_PAGESIZE))))
        XCTAssertEqual(mapped.releasePages(), bytes)
        XCTAssertEqual(residentPages(UnsafeMutableRawPointer(mapped.pointer), bytes: bytes), 0)
        XCTAssertEqual(mapped.pointer[12_345], 0, "a released page reads as zero")
        mapped.pointer[12_345] = 3
        XCTAssertEqual(mapped.pointer[12_345], 3)

        let heap = FloatBuffer(count: 1_000)
        heap.pointer[7] = 5
        XCTAssertEqual(heap.releasePages(), 0)
        XCTAssertEqual(heap.pointer[7], 5)
    }

    /// Wide enough that the forward block (`[N, F]` floats, 256 tokens x 2048) is a mapping.
    static func config() -> LlamaConfig {
        var c = ModelTestSupport.config(tied: true)
        c.intermediateSize = 2048
        c.maxPositionEmbeddings = 64
        return c
    }

    /// fp32 and fp16: log-probs after a release are bit-identical to the forward before it (and
    /// to a model that never released), the forward block's pages are gone after the release,
    /// and a trainable model's saving arena is left alone (its saved activations are backward's).
    func testReleaseBetweenForwardsKeepsLogProbsBitIdentical() throws {
        let config = Self.config()
        let weights = ModelTestSupport.weights(ParameterLayout(config: config), seed: 61)
        let batch = ModelTestSupport.batch(vocab: config.vocabSize, seed: 62, lengths: [64, 40, 17, 64], seqLen: 64)
        for precision in Precision.allCases {
            let released = try ModelTestSupport.model(config, precision: precision, trainable: false, weights: weights)
            let kept = try ModelTestSupport.model(config, precision: precision, trainable: false, weights: weights)
            let before = released.forward(batch, saveForBackward: false)
            XCTAssertGreaterThanOrEqual(released.releaseForwardScratch(), 256 * 2048 * 4, "\(precision)")
            let block = try XCTUnwrap(released.arena?.mlpHidden)
            XCTAssertEqual(residentPages(UnsafeMutableRawPointer(block.pointer), bytes: block.count * 4), 0, "\(precision)")
            let after = released.forward(batch, saveForBackward: false)
            XCTAssertEqual(after, before, "\(precision): the forward after a release")
            XCTAssertEqual(kept.forward(batch, saveForBackward: false), before, "\(precision): a model that never released")
            XCTAssertTrue(before.contains { $0 < 0 }, "the batch has labelled tokens")

            let policy = try ModelTestSupport.model(config, precision: precision, trainable: true, weights: weights)
            _ = policy.forward(batch, saveForBackward: true)
            XCTAssertEqual(policy.releaseForwardScratch(), 0, "\(precision): a saving arena is not released")
        }
    }
}
