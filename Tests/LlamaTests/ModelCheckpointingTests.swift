import XCTest
import TestSupport
import Kernels
@testable import Llama

/// `gradientCheckpointing` (only layer inputs kept, each layer recomputed in backward) against the
/// plain backward: bit-identical log-probs and gradients in fp32 and fp16, padded rows and
/// shared-prompt batches, llama, qwen2 (q/k/v bias) and qwen3 (q/k norm); a smaller arena.
final class ModelCheckpointingTests: XCTestCase {
    static func config(_ family: String) -> LlamaConfig {
        var c = ModelTestSupport.config(tied: family != "llama", layers: 3)
        c.modelType = family
        return c
    }

    /// Log-probs and the gradient of Σ w·logps from one forward + backward, optionally checkpointed.
    /// The backward runs twice (its gradients summed), as a repeated backward must also match.
    func run(_ config: LlamaConfig, precision: Precision, checkpointing: Bool, weights: [Float],
             input: (LlamaModel) -> [Float]) throws -> (logps: [Float], gradient: [Float], savedBytes: Int) {
        let model = try ModelTestSupport.model(config, precision: precision, weights: weights)
        model.gradientCheckpointing = checkpointing
        let logps = input(model)
        var random = TestRandom(seed: 77)
        let w = logps.map { $0 == 0 ? 0 : random.uniform(1) }
        var gradient = [Float](repeating: 0, count: model.layout.totalCount)
        for _ in 0..<2 {
            w.withUnsafeBufferPointer { dw in
                gradient.withUnsafeMutableBufferPointer { g in model.backward(dTokenLogps: dw, gradients: g, groupFinished: nil) }
            }
        }
        return (logps, gradient, model.arena!.saved.byteCount)
    }

    func checkBitIdentical(_ family: String, _ precision: Precision, shared: Bool) throws {
        let c = Self.config(family)
        let weights = ModelTestSupport.weights(ParameterLayout(config: c), seed: 11)
        let batch = ModelSharedPromptTests.pairedBatch(vocab: c.vocabSize, seed: 3, pairs: ModelSharedPromptTests.shapes)
        let packed = try XCTUnwrap(SharedPromptRows(pairedRows: batch))
        let input: (LlamaModel) -> [Float] = { model in
            shared ? model.forward(packed, saveForBackward: true) : model.forward(batch, saveForBackward: true)
        }
        let plain = try run(c, precision: precision, checkpointing: false, weights: weights, input: input)
        let checkpointed = try run(c, precision: precision, checkpointing: true, weights: weights, input: input)
        let what = "\(family) \(precision) \(shared ? "shared prompt" : "padded rows")"
        XCTAssertEqual(plain.logps, checkpointed.logps, what)
        XCTAssertTrue(plain.gradient.contains { $0 != 0 }, "a zero gradient would prove nothing (\(what))")
        let differing = zip(plain.gradient, checkpointed.gradient).filter { $0.0.bitPattern != $0.1.bitPattern }.count
        XCTAssertEqual(differing, 0, "\(what): \(differing) of \(plain.gradient.count) gradient values differ")
        XCTAssertLessThan(checkpointed.savedBytes, plain.savedBytes, what)
    }

    func testFP32GradientsAreBitIdentical() throws {
        for family in ["llama", "qwen2", "qwen3"] {
            try checkBitIdentical(family, .fp32, shared: false)
            try checkBitIdentical(family, .fp32, shared: true)
        }
    }

    func testFP16GradientsAreBitIdentical() throws {
        for family in ["llama", "qwen2", "qwen3"] {
            try checkBitIdentical(family, .fp16, shared: false)
            try checkBitIdentical(family, .fp16, shared: true)
        }
    }

    /// Shapes where the kernels split work over threads (2 BLAS threads, 4 rows of 96 tokens, hidden 128):
    /// the recompute still repeats the first forward bit for bit.
    func testBitIdenticalAtThreadedShapes() throws {
        let previous = BLAS.threads
        BLAS.threads = 2
        defer { BLAS.threads = previous }
        var c = LlamaPreset.small.config
        c.maxPositionEmbeddings = 128
        let weights = ModelTestSupport.weights(ParameterLayout(config: c), seed: 4, scale: 0.1)
        let batch = ModelTestSupport.batch(vocab: c.vocabSize, seed: 9, lengths: [96, 80, 64, 96], seqLen: 96)
        for precision in [Precision.fp32, .fp16] {
            let input: (LlamaModel) -> [Float] = { $0.forward(batch, saveForBackward: true) }
            let plain = try run(c, precision: precision, checkpointing: false, weights: weights, input: input)
            let checkpointed = try run(c, precision: precision, checkpointing: true, weights: weights, input: input)
            XCTAssertEqual(plain.logps, checkpointed.logps, "\(precision)")
            XCTAssertEqual(plain.gradient.map(\.bitPattern), checkpointed.gradient.map(\.bitPattern), "\(precision)")
        }
    }

    /// The saved-activation arena: L + 1 float32 layer inputs plus one layer of everything else,
    /// instead of every layer of everything (llama: [N, H] input, [N, Q+2K], [N, H], [N, 2F]; the
    /// attention output is recomputed, not saved). Under fp16 the float32 work buffers are the
    /// stream [N, H] (input and middle) and [N, max(2F, Q+2K)] (gate|up, and q|k|v before it).
    func testSavedBytesFollowTheFormula() throws {
        let c = ModelTestSupport.config(tied: false, layers: 4)
        let batch = ModelTestSupport.batch(vocab: c.vocabSize, seed: 5)
        let n = batch.rows * batch.seqLen, h = c.hiddenSize, L = c.numHiddenLayers
        let perLayer = h + (c.qDim + 2 * c.kvDim) + h + 2 * c.intermediateSize
        let work = h + max(2 * c.intermediateSize, c.qDim + 2 * c.kvDim)
        let weights = ModelTestSupport.weights(ParameterLayout(config: c), seed: 2)
        for (precision, bytes) in [(Precision.fp32, 4), (.fp16, 2)] {
            let plain = try ModelTestSupport.model(c, precision: precision, weights: weights)
            _ = plain.forward(batch, saveForBackward: true)
            let checkpointed = try ModelTestSupport.model(c, precision: precision, weights: weights)
            checkpointed.gradientCheckpointing = true
            _ = checkpointed.forward(batch, saveForBackward: true)
            let kept = (L + 1) * n * h * 4
            if precision == .fp32 {
                XCTAssertEqual(plain.arena!.saved.byteCount, n * ((L + 1) * h + L * (perLayer - h)) * 4)
                // One layer of every kind (the layer-input slot included, unused) besides the kept inputs.
                XCTAssertEqual(checkpointed.arena!.saved.byteCount, kept + n * perLayer * 4)
            } else {
                // Float32 work buffers of one layer, binary16 slots of every layer (one under checkpointing).
                XCTAssertEqual(plain.arena!.saved.byteCount, n * work * 4 + n * ((L + 1) * h + L * (perLayer - h)) * bytes)
                XCTAssertEqual(checkpointed.arena!.saved.byteCount, kept + n * work * 4 + n * perLayer * bytes)
            }
        }
    }
}
