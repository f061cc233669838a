import Foundation
import XCTest
@testable import Llama

/// Our LlamaModel against transformers' LlamaForCausalLM on the committed fixtures
/// (Fixtures/make_transformers_fixture.py): the model directory written by `save_pretrained`
/// is loaded with `ModelDirectory`, run forward and backward on the same right-padded batch,
/// and every tensor is compared with the float64 reference:
///   fp32: per tensor, max |ours - reference| <= 1e-4 x max |reference|
///   fp16: logits and log-probs within 5e-3 x max |reference|, gradients within 2e-2 x max |reference|
///         (measured: at most 7.6e-4 and 5.2e-3; torch's own float16 forward is 1.3e-3 to 2.5e-3
///         from float64 on these fixtures).
final class TransformersParityTests: XCTestCase {
    typealias Reference = ParityReference

    func load(_ variant: String) throws -> Reference { try loadParityReference(variant, folder: "transformers_parity") }

    func check(_ variant: String, precision: Precision, activationTolerance: Float, gradientTolerance: Float) throws {
        try checkParity(variant, folder: "transformers_parity", precision: precision,
                        activationTolerance: activationTolerance, gradientTolerance: gradientTolerance)
    }

    func testTiedGQAFP32() throws {
        try check("tied_gqa", precision: .fp32, activationTolerance: 1e-4, gradientTolerance: 1e-4)
    }

    func testUntiedHeadDimFP32() throws {
        try check("untied_headdim", precision: .fp32, activationTolerance: 1e-4, gradientTolerance: 1e-4)
    }

    func testTiedGQAFP16() throws {
        try check("tied_gqa", precision: .fp16, activationTolerance: 5e-3, gradientTolerance: 2e-2)
    }

    func testUntiedHeadDimFP16() throws {
        try check("untied_headdim", precision: .fp16, activationTolerance: 5e-3, gradientTolerance: 2e-2)
    }

    // MARK: - Our save, loaded back by us and by transformers

    /// Saves the fixture model with `ModelDirectory.save` in fp32, fp16 and bf16, loads each
    /// back, and checks our fp32 logits: identical to the original's for the fp32 save, within
    /// the rounding of the weights for fp16/bf16. Each directory also gets `our_logits.safetensors`
    /// (the batch and our logits), which Fixtures/check_transformers_load.py compares with
    /// transformers' logits. The directories go to a temporary folder, or to
    /// `$DPO_HF_EXPORT_DIR/<variant>-<dtype>` when that variable is set (to run the script on them).
    func testSavedDirectoriesReloadWithTheSameLogits() throws {
        let exportRoot = ProcessInfo.processInfo.environment["DPO_HF_EXPORT_DIR"].map { URL(fileURLWithPath: $0) }
        for variant in ["tied_gqa", "untied_headdim"] {
            let reference = try load(variant)
            let original = try LlamaModel(config: reference.config, precision: .fp32, trainable: false)
            reference.weights.withUnsafeBufferPointer { original.loadWeights($0) }
            let originalLogits = original.logits(reference.batch)
            for dtype in WeightDType.allCases {
                let directory = try exportRoot.map { root -> URL in
                    let url = root.appendingPathComponent("\(variant)-\(dtype.rawValue)")
                    try? FileManager.default.removeItem(at: url)
                    return url
                } ?? freshTemporaryDirectory()
                try ModelDirectory.save(config: reference.config, weights: reference.weights, to: directory, dtype: dtype)
                let (config, weights) = try ModelDirectory.load(directory)
                let model = try LlamaModel(config: config, precision: .fp32, trainable: false)
                weights.withUnsafeBufferPointer { model.loadWeights($0) }
                let logits = model.logits(reference.batch)
                let tolerance: Float = dtype == .fp32 ? 0 : (dtype == .fp16 ? 5e-3 : 3e-2)
                compare("\(variant) saved as \(dtype.rawValue): logits vs original", validLogits(logits, reference),
                        validLogits(originalLogits, reference), tolerance: tolerance)
                try writeOurLogits(logits, batch: reference.batch, vocab: config.vocabSize,
                                   to: directory.appendingPathComponent("our_logits.safetensors"))
            }
        }
    }

    /// A freshly initialised `tiny` preset (what `dpo init --preset tiny` writes, without the
    /// tokenizer) saved in fp32 and fp16: reloads to the same weights (fp32 exactly), and gets
    /// `our_logits.safetensors` for check_transformers_load.py (exported as `tiny-init-<dtype>`).
    func testInitialisedPresetDirectoryReloads() throws {
        let exportRoot = ProcessInfo.processInfo.environment["DPO_HF_EXPORT_DIR"].map { URL(fileURLWithPath: $0) }
        let config = LlamaPreset.tiny.config
        let weights = WeightInitializer(seed: 7).weights(for: config)
        let rows = 2, seqLen = 9, lengths = [9, 5]
        var inputIds = [Int32](repeating: Int32(config.padTokenId ?? 0), count: rows * seqLen)
        for row in 0..<rows {
            for t in 0..<lengths[row] { inputIds[row * seqLen + t] = Int32((row * 31 + t * 17) % config.vocabSize) }
        }
        let batch = TokenRows(rows: rows, seqLen: seqLen, inputIds: inputIds,
                              targetIds: [Int32](repeating: -1, count: rows * seqLen), lengths: lengths)
        for dtype in [WeightDType.fp32, .fp16] {
            let directory = try exportRoot.map { root -> URL in
                let url = root.appendingPathComponent("tiny-init-\(dtype.rawValue)")
                try? FileManager.default.removeItem(at: url)
                return url
            } ?? freshTemporaryDirectory()
            try ModelDirectory.save(config: config, weights: weights, to: directory, dtype: dtype)
            let (loadedConfig, loaded) = try ModelDirectory.load(directory)
            if dtype == .fp32 { XCTAssertEqual(loaded, weights) }
            XCTAssertEqual(loadedConfig.eosTokenId, 258)
            XCTAssertEqual(loadedConfig.padTokenId, 256)
            let model = try LlamaModel(config: loadedConfig, precision: .fp32, trainable: false)
            loaded.withUnsafeBufferPointer { model.loadWeights($0) }
            let logits = model.logits(batch)
            XCTAssertTrue(logits.allSatisfy(\.isFinite))
            try writeOurLogits(logits, batch: batch, vocab: config.vocabSize,
                               to: directory.appendingPathComponent("our_logits.safetensors"))
        }
    }
}
