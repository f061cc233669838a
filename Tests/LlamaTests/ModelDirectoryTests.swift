import Foundation
import TestSupport
import XCTest
@testable import Llama

/// Hugging Face model directories in and out: round trips, tied/untied heads, sharding,
/// and directories that do not match their config.
final class ModelDirectoryTests: XCTestCase {
    /// A tiny config with GQA (4 heads, 2 kv heads), 2 layers.
    func tinyConfig(tied: Bool) -> LlamaConfig {
        LlamaConfig(hiddenSize: 16, intermediateSize: 24, numHiddenLayers: 2, numAttentionHeads: 4, numKeyValueHeads: 2,
                    vocabSize: 11, tieWordEmbeddings: tied, bosTokenId: 1, eosTokenId: 2, padTokenId: 0)
    }

    func randomWeights(_ config: LlamaConfig, seed: UInt64 = 3) -> [Float] {
        var random = TestRandom(seed: seed)
        return random.array(ParameterLayout(config: config).totalCount, scale: 0.5)
    }

    func assertError(_ kind: SafetensorsError.Kind, naming words: [String], _ body: () throws -> Void, line: UInt = #line) {
        XCTAssertThrowsError(try body(), line: line) { error in
            guard let error = error as? SafetensorsError else { return XCTFail("not a SafetensorsError: \(error)", line: line) }
            XCTAssertEqual(error.kind, kind, error.description, line: line)
            for word in words { XCTAssertTrue(error.description.contains(word), "\"\(word)\" not in: \(error)", line: line) }
        }
    }

    // MARK: - Round trips

    func testFP32RoundTripIsExactTiedAndUntied() throws {
        for tied in [true, false] {
            let directory = try freshTemporaryDirectory()
            let config = tinyConfig(tied: tied)
            let weights = randomWeights(config)
            try ModelDirectory.save(config: config, weights: weights, to: directory)
            let (loadedConfig, loadedWeights) = try ModelDirectory.load(directory)
            var expectedConfig = config
            expectedConfig.torchDtype = "float32"
            XCTAssertEqual(loadedConfig, expectedConfig)
            XCTAssertEqual(try ModelDirectory.loadConfig(directory), expectedConfig)
            XCTAssertEqual(loadedWeights.map(\.bitPattern), weights.map(\.bitPattern))

            let file = try SafetensorsFile(contentsOf: directory.appendingPathComponent("model.safetensors"))
            XCTAssertEqual(file["lm_head.weight"] != nil, !tied, "tied models store no lm_head, as transformers does")
            XCTAssertEqual(file["model.layers.1.self_attn.k_proj.weight"]?.shape, [8, 16])
            XCTAssertEqual(file.metadata["format"], "pt")
            let files = try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
            XCTAssertEqual(files, ["config.json", "generation_config.json", "model.safetensors"])
        }
    }

    func testHalfPrecisionRoundTripsRoundAsExpected() throws {
        let config = tinyConfig(tied: true)
        let weights = randomWeights(config)
        for dtype in [WeightDType.fp16, .bf16] {
            let directory = try freshTemporaryDirectory()
            try ModelDirectory.save(config: config, weights: weights, to: directory, dtype: dtype)
            let (loadedConfig, loaded) = try ModelDirectory.load(directory)
            XCTAssertEqual(loadedConfig.torchDtype, dtype == .fp16 ? "float16" : "bfloat16")
            let file = try SafetensorsFile(contentsOf: directory.appendingPathComponent("model.safetensors"))
            XCTAssertEqual(file["model.norm.weight"]?.dtype, dtype.safetensors)
            // Relative rounding error of a half-precision value: at most 2^-11 (F16), 2^-8 (BF16).
            let bound: Float = dtype == .fp16 ? 0x1p-11 : 0x1p-8
            for (original, read) in zip(weights, loaded) {
                XCTAssertLessThanOrEqual(abs(original - read), abs(original) * bound + 1e-7)
            }
            if dtype == .fp16 { XCTAssertEqual(loaded, weights.map { Float(Float16($0)) }) }
        }
    }

    func testGenerationConfig() throws {
        let directory = try freshTemporaryDirectory()
        var config = tinyConfig(tied: true)
        config.eosTokenIds = [2, 3]
        try ModelDirectory.save(config: config, weights: randomWeights(config), to: directory)
        let object = try JSONDecoder().decode(JSONValue.self, from: Data(contentsOf: directory.appendingPathComponent("generation_config.json"))).objectValue
        XCTAssertEqual(object?["bos_token_id"], .integer(1))
        XCTAssertEqual(object?["eos_token_id"], .array([.integer(2), .integer(3)]))
        XCTAssertEqual(object?["pad_token_id"], .integer(0))
        XCTAssertEqual(try ModelDirectory.load(directory).config.eosTokenIds, [2, 3])
    }

    func testShardedSaveAndLoadReplacesTheOtherLayout() throws {
        let directory = try freshTemporaryDirectory()
        let config = tinyConfig(tied: false)
        let weights = randomWeights(config)
        try ModelDirectory.save(config: config, weights: weights, to: directory)
        try ModelDirectory.save(config: config, weights: weights, to: directory, maxShardBytes: 2048)
        var files = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        XCTAssertFalse(files.contains("model.safetensors"), "the single file of the earlier save is removed")
        XCTAssertTrue(files.contains("model.safetensors.index.json"))
        let shards = files.filter { $0.hasPrefix("model-") }
        XCTAssertGreaterThan(shards.count, 2)
        XCTAssertEqual(try ModelDirectory.load(directory).weights, weights)

        try ModelDirectory.save(config: config, weights: weights, to: directory)
        files = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        XCTAssertEqual(files.sorted(), ["config.json", "generation_config.json", "model.safetensors"], "shards and index removed")
        XCTAssertEqual(try ModelDirectory.load(directory).weights, weights)
    }

    // MARK: - Tied and untied heads in the file

    /// Writes the directory's tensors by hand: `layout` entries plus/minus some names.
    func writeDirectory(_ config: LlamaConfig, weights: [Float], extra: [(String, [Int], [Float])] = [],
                        omit: Set<String> = [], rename: [String: String] = [:], to directory: URL) throws {
        try config.save(to: directory.appendingPathComponent("config.json"))
        let layout = ParameterLayout(config: config)
        var tensors: [(String, [Int], [Float])] = layout.entries.filter { !omit.contains($0.name) }
            .map { (rename[$0.name] ?? $0.name, $0.shape, Array(weights[$0.range])) }
        tensors += extra
        let flat = tensors.flatMap(\.2)
        try flat.withUnsafeBufferPointer { buffer in
            var offset = 0
            let sources = tensors.map { tensor -> SafetensorsTensorSource in
                defer { offset += tensor.2.count }
                return SafetensorsTensorSource(name: tensor.0, shape: tensor.1, values: UnsafeBufferPointer(rebasing: buffer[offset..<(offset + tensor.2.count)]))
            }
            try SafetensorsWriter.write(sources, dtype: .F32, to: directory.appendingPathComponent("model.safetensors"))
        }
    }

    func testTiedModelIgnoresStoredLMHead() throws {
        let directory = try freshTemporaryDirectory()
        let config = tinyConfig(tied: true)
        let weights = randomWeights(config)
        let embedding = ParameterLayout(config: config).entry("model.embed_tokens.weight")
        try writeDirectory(config, weights: weights, extra: [("lm_head.weight", embedding.shape, Array(weights[embedding.range]))], to: directory)
        XCTAssertEqual(try ModelDirectory.load(directory).weights, weights)
    }

    func testTiedModelWithOnlyLMHeadUsesItAsEmbedding() throws {
        let directory = try freshTemporaryDirectory()
        let config = tinyConfig(tied: true)
        let weights = randomWeights(config)
        try writeDirectory(config, weights: weights, rename: ["model.embed_tokens.weight": "lm_head.weight"], to: directory)
        XCTAssertEqual(try ModelDirectory.load(directory).weights, weights)
    }

    func testUntiedModelNeedsLMHead() throws {
        let directory = try freshTemporaryDirectory()
        let config = tinyConfig(tied: false)
        try writeDirectory(config, weights: randomWeights(config), omit: ["lm_head.weight"], to: directory)
        assertError(.missingTensor, naming: ["lm_head.weight", "model.safetensors", "tie_word_embeddings"]) {
            _ = try ModelDirectory.load(directory)
        }
    }

    // MARK: - Directories that do not match their config

    func testMissingLayerTensor() throws {
        let directory = try freshTemporaryDirectory()
        let config = tinyConfig(tied: true)
        try writeDirectory(config, weights: randomWeights(config), omit: ["model.layers.1.mlp.up_proj.weight"], to: directory)
        assertError(.missingTensor, naming: ["model.layers.1.mlp.up_proj.weight", "model.safetensors"]) {
            _ = try ModelDirectory.load(directory)
        }
    }

    func testShapeMismatchAgainstConfig() throws {
        let directory = try freshTemporaryDirectory()
        let config = tinyConfig(tied: true)
        let weights = randomWeights(config)
        try writeDirectory(config, weights: weights, to: directory)
        var wider = config
        wider.intermediateSize = 32
        try wider.save(to: directory.appendingPathComponent("config.json"))
        assertError(.shapeMismatch, naming: ["model.layers.0.mlp.gate_proj.weight", "model.safetensors", "config.json", "[32, 16]"]) {
            _ = try ModelDirectory.load(directory)
        }
    }

    func testUnexpectedTensorIsRefused() throws {
        let directory = try freshTemporaryDirectory()
        let config = tinyConfig(tied: true)
        try writeDirectory(config, weights: randomWeights(config), extra: [("model.layers.0.self_attn.q_proj.bias", [16], Array(repeating: 0, count: 16))], to: directory)
        assertError(.unexpectedTensor, naming: ["model.layers.0.self_attn.q_proj.bias", "model.safetensors"]) {
            _ = try ModelDirectory.load(directory)
        }
        // Rotary frequency buffers of old checkpoints are not parameters: ignored.
        try writeDirectory(config, weights: randomWeights(config), extra: [("model.layers.0.self_attn.rotary_emb.inv_freq", [2], [1, 0.5])], to: directory)
        XCTAssertNoThrow(try ModelDirectory.load(directory))
    }

    func testWrongDTypeInDirectory() throws {
        let directory = try freshTemporaryDirectory()
        let config = tinyConfig(tied: true)
        try writeDirectory(config, weights: randomWeights(config), to: directory)
        // Rewrite the file with the final norm stored as I32 (same byte size as F32).
        let url = directory.appendingPathComponent("model.safetensors")
        var bytes = try Data(contentsOf: url)
        let headerLength = Int(bytes.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        var header = String(decoding: bytes[8..<(8 + headerLength)], as: UTF8.self)
        let range = try XCTUnwrap(header.range(of: #""model.norm.weight":\{"data_offsets":\[\d+,\d+\],"dtype":"F32""#, options: .regularExpression))
        header.replaceSubrange(range, with: header[range].replacingOccurrences(of: "F32", with: "I32"))
        bytes.replaceSubrange(8..<(8 + headerLength), with: Data(header.utf8))
        try bytes.write(to: url)
        assertError(.unsupportedDType, naming: ["model.norm.weight", "I32"]) { _ = try ModelDirectory.load(directory) }
    }

    func testNonFiniteWeightsRefused() throws {
        let directory = try freshTemporaryDirectory()
        let config = tinyConfig(tied: true)
        var weights = randomWeights(config)
        weights[ParameterLayout(config: config).entry("model.layers.0.mlp.down_proj.weight").offset + 3] = .infinity
        assertError(.nonFinite, naming: ["model.layers.0.mlp.down_proj.weight"]) {
            try ModelDirectory.save(config: config, weights: weights, to: directory)
        }
        weights = randomWeights(config)
        weights[0] = 1e6
        assertError(.nonFinite, naming: ["model.embed_tokens.weight", "overflows F16"]) {
            try ModelDirectory.save(config: config, weights: weights, to: directory, dtype: .fp16)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory.appendingPathComponent("model.safetensors").path))
    }

    func testWrongWeightCountAndBadConfigRefusedOnSave() throws {
        let directory = try freshTemporaryDirectory()
        let config = tinyConfig(tied: true)
        XCTAssertThrowsError(try ModelDirectory.save(config: config, weights: [1, 2, 3], to: directory))
        var bad = config
        bad.numKeyValueHeads = 3
        XCTAssertThrowsError(try ModelDirectory.save(config: bad, weights: randomWeights(config), to: directory)) { error in
            XCTAssertEqual((error as? LlamaConfigError)?.key, "num_key_value_heads")
        }
    }

    func testMissingFilesNamed() throws {
        let directory = try freshTemporaryDirectory()
        XCTAssertThrowsError(try ModelDirectory.load(directory)) { error in
            XCTAssertTrue(String(describing: error).contains("config.json"), "\(error)")
        }
        try tinyConfig(tied: true).save(to: directory.appendingPathComponent("config.json"))
        assertError(.unreadable, naming: ["model.safetensors"]) { _ = try ModelDirectory.load(directory) }
        try Data([0x80, 0x02]).write(to: directory.appendingPathComponent("pytorch_model.bin"))
        assertError(.unreadable, naming: ["model.safetensors", "pytorch_model.bin", "safe_serialization"]) { _ = try ModelDirectory.load(directory) }
    }
}

/// Directories written by transformers 5.23 `save_pretrained` (the parity fixtures).
final class TransformersWrittenDirectoryTests: XCTestCase {
    func fixture(_ name: String) throws -> URL {
        try XCTUnwrap(Bundle.module.url(forResource: "Fixtures", withExtension: nil))
            .appendingPathComponent("transformers_parity").appendingPathComponent(name)
    }

    func testLoadsTiedTransformersDirectory() throws {
        let directory = try fixture("tied_gqa")
        let (config, weights) = try ModelDirectory.load(directory)
        XCTAssertEqual(config.hiddenSize, 32)
        XCTAssertEqual(config.numKeyValueHeads, 2)
        XCTAssertEqual(config.headDim, 8)
        XCTAssertEqual(config.vocabSize, 97)
        XCTAssertEqual(config.ropeTheta, 1e4, "read from rope_parameters")
        XCTAssertEqual(config.rmsNormEps, 1e-5)
        XCTAssertTrue(config.tieWordEmbeddings)
        XCTAssertEqual(config.eosTokenId, 2)
        XCTAssertEqual(config.padTokenId, 0)
        let file = try SafetensorsFile(contentsOf: directory.appendingPathComponent("model.safetensors"))
        let layout = ParameterLayout(config: config)
        for entry in layout.entries {
            XCTAssertEqual(Array(weights[entry.range]), try file.floats(entry.name), entry.name)
        }
        // The reference file: integer batch tensors and a scalar.
        let reference = try SafetensorsFile(contentsOf: directory.appendingPathComponent("reference.safetensors"))
        XCTAssertEqual(try reference.integers("lengths"), [11, 8, 4])
        XCTAssertEqual(reference["loss"]?.shape, [])
        XCTAssertEqual(try reference.floats("loss").count, 1)
        XCTAssertEqual(reference["grad.model.embed_tokens.weight"]?.shape, [97, 32])
    }

    func testLoadsUntiedTransformersDirectoryWithHeadDim() throws {
        let (config, weights) = try ModelDirectory.load(try fixture("untied_headdim"))
        XCTAssertEqual(config.headDim, 12)
        XCTAssertEqual(config.qDim, 48)
        XCTAssertFalse(config.tieWordEmbeddings)
        let layout = ParameterLayout(config: config)
        XCTAssertEqual(layout.entry("lm_head.weight").shape, [89, 32])
        XCTAssertEqual(weights.count, layout.totalCount)
    }

    /// Our save of a transformers directory reads back bit-exactly (fp32) with the same config.
    func testResaveIsLossless() throws {
        let (config, weights) = try ModelDirectory.load(try fixture("untied_headdim"))
        let copy = try freshTemporaryDirectory()
        try ModelDirectory.save(config: config, weights: weights, to: copy)
        let (again, againWeights) = try ModelDirectory.load(copy)
        XCTAssertEqual(again, config)
        XCTAssertEqual(againWeights, weights)
    }
}
