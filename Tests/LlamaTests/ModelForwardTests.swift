import XCTest
import TestSupport
@testable import Llama
import Kernels

final class ModelForwardTests: XCTestCase {
    /// forward's log-probs equal a Double log-softmax of `logits` at each target; 0 where target < 0.
    func testLogpsAgreeWithLogits() throws {
        for tied in [true, false] {
            let config = ModelTestSupport.config(tied: tied)
            let model = try ModelTestSupport.model(config, weights: ModelTestSupport.weights(ParameterLayout(config: config), seed: 31))
            let batch = ModelTestSupport.batch(vocab: config.vocabSize, seed: 32)
            let logps = model.forward(batch, saveForBackward: false)
            let logits = model.logits(batch)
            let v = config.vocabSize
            for p in 0..<(batch.rows * batch.seqLen) {
                guard batch.targetIds[p] >= 0 else { XCTAssertEqual(logps[p], 0); continue }
                let row = (0..<v).map { Double(logits[p * v + $0]) }
                let m = row.max()!
                let lse = m + log(row.reduce(0) { $0 + exp($1 - m) })
                XCTAssertEqual(Double(logps[p]), row[Int(batch.targetIds[p])] - lse, accuracy: 1e-5)
            }
        }
    }

    /// A row's log-probs do not depend on the other rows, on what the padding holds, or on
    /// how far it is padded (tolerance 1e-5: BLAS blocking may differ with the batch shape).
    func testPaddingInvariance() throws {
        let config = ModelTestSupport.config(tied: true)
        let model = try ModelTestSupport.model(config, weights: ModelTestSupport.weights(ParameterLayout(config: config), seed: 33))
        let batch = ModelTestSupport.batch(vocab: config.vocabSize, seed: 34)
        let reference = model.forward(batch, saveForBackward: false)
        XCTAssertTrue(reference.allSatisfy(\.isFinite))
        // Row 1 (length 4) alone, padded to 9 with different pad ids.
        let seqLen = 9
        var inputs = [Int32](repeating: 5, count: seqLen), targets = [Int32](repeating: -1, count: seqLen)
        for t in 0..<4 { inputs[t] = batch.inputIds[6 + t]; targets[t] = batch.targetIds[6 + t] }
        let alone = model.forward(TokenRows(rows: 1, seqLen: seqLen, inputIds: inputs, targetIds: targets, lengths: [4]),
                                  saveForBackward: false)
        for t in 0..<4 { XCTAssertEqual(alone[t], reference[6 + t], accuracy: 1e-5) }
        // Changing rows 0 and 2 and row 1's padding leaves row 1 alone.
        var changed = batch
        for p in 0..<6 { changed.inputIds[p] = Int32((p * 5 + 1) % config.vocabSize) }
        changed.inputIds[10] = 0; changed.inputIds[11] = 21
        for p in 12..<18 { changed.inputIds[p] = 3 }
        let other = model.forward(changed, saveForBackward: false)
        for t in 0..<4 { XCTAssertEqual(other[6 + t], reference[6 + t], accuracy: 1e-5) }
    }

    /// fp16 storage stays close to fp32: log-probs within 2e-2 absolute, and every tensor's
    /// gradient within 5e-2 x its largest fp32 magnitude. A frozen fp16 model
    /// (trainable: false) gives the same log-probs as the trainable one and half the weight bytes.
    func testFloat16CloseToFloat32() throws {
        let config = ModelTestSupport.config(tied: true)
        let weights = ModelTestSupport.weights(ParameterLayout(config: config), seed: 35)
        let full = try ModelTestSupport.model(config, precision: .fp32, weights: weights)
        let half = try ModelTestSupport.model(config, precision: .fp16, weights: weights)
        let frozen = try ModelTestSupport.model(config, precision: .fp16, trainable: false, weights: weights)
        let batch = ModelTestSupport.batch(vocab: config.vocabSize, seed: 36)
        let fullLogps = full.forward(batch, saveForBackward: false)
        let halfLogps = half.forward(batch, saveForBackward: false)
        XCTAssertLessThanOrEqual(maxAbsDifference(fullLogps, halfLogps), 2e-2)
        XCTAssertEqual(frozen.forward(batch, saveForBackward: false), halfLogps)
        XCTAssertEqual(frozen.weightBytes * 2, full.weightBytes)
        var random = TestRandom(seed: 37)
        let w = batch.targetIds.map { $0 >= 0 ? random.uniform() : 0 }
        let fullGradient = ModelTestSupport.gradient(full, batch, w).gradient
        let (halfGradient, groups) = ModelTestSupport.gradient(half, batch, w)
        XCTAssertEqual(groups, [3, 2, 1, 0])
        for entry in full.layout.entries {
            let reference = Array(fullGradient[entry.range]), candidate = Array(halfGradient[entry.range])
            XCTAssertLessThanOrEqual(maxAbsDifference(reference, candidate), 5e-2 * max(maxAbs(reference), 1e-3), entry.name)
        }
        // copyWeights under fp16 returns the binary16-rounded weights.
        var copied = [Float](repeating: 0, count: weights.count)
        copied.withUnsafeMutableBufferPointer { half.copyWeights(into: $0) }
        XCTAssertLessThanOrEqual(maxAbsDifference(copied, weights), 1e-3)
        copied.withUnsafeMutableBufferPointer { full.copyWeights(into: $0) }
        XCTAssertEqual(copied, weights)
    }

    /// Inconsistent shapes are refused with a message naming the keys.
    func testBadConfigIsRefused() {
        var config = ModelTestSupport.config(tied: true)
        config.numKeyValueHeads = 3
        XCTAssertThrowsError(try LlamaModel(config: config, precision: .fp32, trainable: true)) { error in
            XCTAssertTrue("\(error)".contains("num_key_value_heads"))
        }
    }

    /// Two threads (parallel attention jobs, element-wise chunks, threaded BLAS) agree with one
    /// thread: log-probs and gradients within 1e-5 x the largest magnitude.
    func testTwoThreadsAgreeWithOne() throws {
        let config = ModelTestSupport.config(tied: false)
        let model = try ModelTestSupport.model(config, weights: ModelTestSupport.weights(ParameterLayout(config: config), seed: 38))
        let batch = ModelTestSupport.batch(vocab: config.vocabSize, seed: 39)
        let w = batch.targetIds.map { $0 >= 0 ? Float(1) : 0 }
        let previous = BLAS.threads
        defer { BLAS.threads = previous }
        BLAS.threads = 1
        let serial = ModelTestSupport.gradient(model, batch, w).gradient
        let serialLogps = model.forward(batch, saveForBackward: false)
        BLAS.threads = 2
        let parallel = ModelTestSupport.gradient(model, batch, w).gradient
        XCTAssertLessThanOrEqual(maxAbsDifference(model.forward(batch, saveForBackward: false), serialLogps), 1e-5)
        XCTAssertLessThanOrEqual(maxAbsDifference(parallel, serial), 1e-5 * maxAbs(serial))
    }
}
