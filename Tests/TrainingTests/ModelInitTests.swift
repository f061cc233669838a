import Foundation
import Llama
import Tokenization
import XCTest
@testable import Training

/// `dpo init`'s library side: what it writes, what it refuses.
///
/// With `DPO_INIT_EXPORT_DIR` set, the directories (tiny, small, minimind; fp32 and fp16) are kept
/// there with `our_logits.safetensors`, for
/// `/work/venv/bin/python Tests/LlamaTests/Fixtures/check_transformers_load.py $DPO_INIT_EXPORT_DIR/*`.
final class ModelInitTests: XCTestCase {

    private func temporaryDirectory() -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("dpo-init-\(UUID().uuidString)")
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    // MARK: - What is written

    func testTinyPresetDirectoryHoldsEveryFileAndReloads() throws {
        let url = temporaryDirectory().appendingPathComponent("tiny")
        var p = ModelInit.Parameters(config: LlamaPreset.tiny.config, outputDirectory: url.path)
        p.seed = 5
        let summary = try ModelInit.write(p)
        for name in ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: url.appendingPathComponent(name).path), name)
        }
        var (config, weights) = try ModelDirectory.load(url)
        XCTAssertEqual(config.torchDtype, "float32")
        config.torchDtype = nil
        XCTAssertEqual(config, summary.config)
        XCTAssertEqual(config.vocabSize, 259)
        XCTAssertEqual(config.eosTokenId, 258)
        XCTAssertEqual(config.padTokenId, 256)
        // Same seed, same weights as the initializer gives directly (fp32 is stored exactly).
        XCTAssertEqual(weights, WeightInitializer(seed: 5).weights(for: LlamaPreset.tiny.config))
        let tokenizer = try loadTokenizer(from: url)
        XCTAssertEqual(tokenizer.vocabularySize, 259)
        XCTAssertEqual(tokenizer.eosTokenId, 258)
        XCTAssertEqual(tokenizer.chatTemplate, .chatml)
    }

    func testFP16DirectoryRoundsEachWeightToHalf() throws {
        let url = temporaryDirectory()
        var p = ModelInit.Parameters(config: LlamaPreset.tiny.config, outputDirectory: url.path)
        p.dtype = .fp16
        _ = try ModelInit.write(p)
        let (_, weights) = try ModelDirectory.load(url)
        let exact = WeightInitializer(seed: 0).weights(for: LlamaPreset.tiny.config)
        XCTAssertEqual(weights.count, exact.count)
        // Normal(0, 0.02) values in fp16: relative error <= 2^-11, absolute <= 2^-24 near 0.
        for (stored, original) in zip(weights, exact) {
            XCTAssertLessThanOrEqual(abs(stored - original), abs(original) * 0x1p-11 + 0x1p-24)
        }
    }

    func testSmallPresetKeepsItsVocabularyAboveTheByteTokenizer() throws {
        let url = temporaryDirectory()
        let summary = try ModelInit.write(ModelInit.Parameters(config: LlamaPreset.small.config, outputDirectory: url.path))
        XCTAssertEqual(summary.config.vocabSize, 512)
        XCTAssertEqual(summary.tokenizerVocabularySize, 259)
    }

    // MARK: - Tokenizers from a directory

    /// A tokenizer directory: the model's special ids become the tokenizer's.
    func testTokenizerDirectorySetsTheSpecialIds() throws {
        let source = temporaryDirectory()
        try TokenizerFiles.writeByteTokenizer(to: source)
        let url = temporaryDirectory()
        var p = ModelInit.Parameters(config: LlamaPreset.small.config, outputDirectory: url.path)
        p.tokenizer = .directory(source.path)
        let summary = try ModelInit.write(p)
        XCTAssertEqual(summary.config.eosTokenId, 258)
        XCTAssertEqual(summary.config.padTokenId, 256)
        XCTAssertNil(summary.config.bosTokenId)
        XCTAssertEqual(try Data(contentsOf: url.appendingPathComponent("tokenizer.json")),
                       try Data(contentsOf: source.appendingPathComponent("tokenizer.json")))
    }

    func testTokenizerLargerThanTheVocabularyIsRefusedUnlessVocabSizeGrows() throws {
        let source = temporaryDirectory()
        try TokenizerFiles.writeByteTokenizer(to: source)
        var config = LlamaPreset.tiny.config
        config.vocabSize = 200
        let url = temporaryDirectory()
        var p = ModelInit.Parameters(config: config, outputDirectory: url.path)
        p.tokenizer = .directory(source.path)
        XCTAssertThrowsError(try ModelInit.write(p)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("259 ids") && text.contains("vocab_size is 200") && text.contains("--vocab-size 259"), text)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: url.path), "nothing is written when a check fails")
        p.vocabularySize = 259
        XCTAssertEqual(try ModelInit.write(p).config.vocabSize, 259)
    }

    func testMissingTokenizerDirectoryNamesIt() throws {
        var p = ModelInit.Parameters(config: LlamaPreset.tiny.config, outputDirectory: temporaryDirectory().path)
        p.tokenizer = .directory("/nonexistent/tok")
        XCTAssertThrowsError(try ModelInit.write(p)) { error in
            XCTAssertTrue("\(error)".contains("/nonexistent/tok"), "\(error)")
        }
        XCTAssertEqual(ModelInit.TokenizerSource(argument: "byte"), .byte)
        XCTAssertEqual(ModelInit.TokenizerSource(argument: "runs/x"), .directory("runs/x"))
    }

    // MARK: - The output directory

    func testNonEmptyOutputIsRefusedWithoutForce() throws {
        let url = temporaryDirectory()
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        try Data("x".utf8).write(to: url.appendingPathComponent("notes.txt"))
        var p = ModelInit.Parameters(config: LlamaPreset.tiny.config, outputDirectory: url.path)
        XCTAssertThrowsError(try ModelInit.write(p)) { error in
            XCTAssertEqual("\(error)", "output directory: \(url.path) is not empty (1 entries); choose another --out or pass --force")
        }
        p.overwrite = true
        _ = try ModelInit.write(p)
        XCTAssertTrue(FileManager.default.fileExists(atPath: url.appendingPathComponent("model.safetensors").path))
        XCTAssertTrue(FileManager.default.fileExists(atPath: url.appendingPathComponent("notes.txt").path))
    }

    func testEmptyExistingDirectoryIsAccepted() throws {
        let url = temporaryDirectory()
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        _ = try ModelInit.write(ModelInit.Parameters(config: LlamaPreset.tiny.config, outputDirectory: url.path))
    }

    func testOutputThatIsAFileIsRefused() throws {
        let url = temporaryDirectory()
        try Data().write(to: url)
        XCTAssertThrowsError(try ModelInit.write(ModelInit.Parameters(config: LlamaPreset.tiny.config, outputDirectory: url.path))) {
            XCTAssertTrue("\($0)".contains("is a file"), "\($0)")
        }
    }

    // MARK: - Export for the transformers check

    /// Writes every preset in fp32 and fp16 with our logits on a padded batch, when asked.
    func testExportForTransformers() throws {
        guard let root = ProcessInfo.processInfo.environment["DPO_INIT_EXPORT_DIR"] else { return }
        for preset in LlamaPreset.allCases {
            for dtype in [WeightDType.fp32, .fp16] {
                let url = URL(fileURLWithPath: root).appendingPathComponent("\(preset.rawValue)-\(dtype.rawValue)")
                var p = ModelInit.Parameters(config: preset.config, outputDirectory: url.path)
                p.dtype = dtype
                p.seed = 11
                p.overwrite = true
                _ = try ModelInit.write(p)
                let (config, weights) = try ModelDirectory.load(url)
                let model = try LlamaModel(config: config, precision: .fp32, trainable: false)
                weights.withUnsafeBufferPointer { model.loadWeights($0) }
                let tokenizer = try loadTokenizer(from: url)
                let rows = [tokenizer.encode("12+7=19<|im_end|>"), tokenizer.encode("héllo")]
                let seqLen = rows.map(\.count).max()!
                var inputIds = [Int32](repeating: 256, count: 2 * seqLen)
                for (r, ids) in rows.enumerated() { for (t, id) in ids.enumerated() { inputIds[r * seqLen + t] = id } }
                let batch = TokenRows(rows: 2, seqLen: seqLen, inputIds: inputIds,
                                      targetIds: [Int32](repeating: -1, count: 2 * seqLen), lengths: rows.map(\.count))
                let logits = model.logits(batch)
                let ids = inputIds.map(Float.init), lengths = rows.map { Float($0.count) }
                try ids.withUnsafeBufferPointer { i in
                    try lengths.withUnsafeBufferPointer { l in
                        try logits.withUnsafeBufferPointer { v in
                            try SafetensorsWriter.write([
                                SafetensorsTensorSource(name: "input_ids", shape: [2, seqLen], values: i),
                                SafetensorsTensorSource(name: "lengths", shape: [2], values: l),
                                SafetensorsTensorSource(name: "logits", shape: [2, seqLen, config.vocabSize], values: v),
                            ], dtype: .F32, to: url.appendingPathComponent("our_logits.safetensors"))
                        }
                    }
                }
            }
        }
    }
}
