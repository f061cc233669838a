import Foundation
import XCTest
@testable import Llama

/// `LlamaConfig` from Hugging Face `config.json`: what is read, defaulted, refused, written.
final class ConfigTests: XCTestCase {
    /// A config.json as transformers 5.23 writes it for LlamaForCausalLM (rope_parameters, dtype).
    static let transformers5JSON = """
    {"architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
     "bos_token_id": 1, "dtype": "float32", "eos_token_id": 2, "head_dim": 8, "hidden_act": "silu",
     "hidden_size": 32, "initializer_range": 0.02, "intermediate_size": 48, "max_position_embeddings": 2048,
     "mlp_bias": false, "model_type": "llama", "num_attention_heads": 4, "num_hidden_layers": 1,
     "num_key_value_heads": 2, "pad_token_id": null, "pretraining_tp": 1, "rms_norm_eps": 1e-06,
     "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"}, "tie_word_embeddings": true,
     "transformers_version": "5.23.0", "use_cache": true, "vocab_size": 100}
    """

    /// The minimal transformers-4 style config the refusal tests start from.
    static let baseObject: [String: JSONValue] = [
        "model_type": .string("llama"), "hidden_size": .integer(64), "intermediate_size": .integer(176),
        "num_hidden_layers": .integer(2), "num_attention_heads": .integer(4), "num_key_value_heads": .integer(2),
        "vocab_size": .integer(259), "rope_theta": .number(1e6), "rope_scaling": .null,
    ]

    func decode(_ text: String) throws -> LlamaConfig {
        try JSONDecoder().decode(LlamaConfig.self, from: Data(text.utf8))
    }

    /// Decodes `baseObject` with `changes` applied (`nil` removes the key); returns the error.
    func refusal(_ changes: [String: JSONValue?], file: StaticString = #filePath, line: UInt = #line) -> LlamaConfigError? {
        var object = Self.baseObject
        for (key, value) in changes { object[key] = value }
        do {
            _ = try LlamaConfig(json: object)
            XCTFail("accepted \(changes)", file: file, line: line)
            return nil
        } catch let error as LlamaConfigError {
            return error
        } catch {
            XCTFail("unexpected error type \(error)", file: file, line: line)
            return nil
        }
    }

    // MARK: - Reading

    func testDecodesTransformers5Config() throws {
        let config = try decode(Self.transformers5JSON)
        XCTAssertEqual(config.hiddenSize, 32)
        XCTAssertEqual(config.intermediateSize, 48)
        XCTAssertEqual(config.numHiddenLayers, 1)
        XCTAssertEqual(config.numAttentionHeads, 4)
        XCTAssertEqual(config.numKeyValueHeads, 2)
        XCTAssertEqual(config.headDim, 8)
        XCTAssertEqual(config.vocabSize, 100)
        XCTAssertEqual(config.rmsNormEps, 1e-6)
        XCTAssertEqual(config.ropeTheta, 10_000)
        XCTAssertTrue(config.tieWordEmbeddings)
        XCTAssertEqual(config.maxPositionEmbeddings, 2048)
        XCTAssertEqual(config.bosTokenId, 1)
        XCTAssertEqual(config.eosTokenId, 2)
        XCTAssertNil(config.padTokenId)
        XCTAssertEqual(config.torchDtype, "float32")
    }

    func testDefaultsFollowTransformersLlamaConfig() throws {
        let config = try LlamaConfig(json: [
            "model_type": .string("llama"), "hidden_size": .integer(64), "intermediate_size": .integer(176),
            "num_hidden_layers": .integer(2), "num_attention_heads": .integer(4), "vocab_size": .integer(259),
        ])
        XCTAssertEqual(config.numKeyValueHeads, 4, "num_key_value_heads defaults to num_attention_heads")
        XCTAssertEqual(config.headDim, 16, "head_dim defaults to hidden_size / num_attention_heads")
        XCTAssertEqual(config.rmsNormEps, 1e-6)
        XCTAssertEqual(config.ropeTheta, 10_000)
        XCTAssertFalse(config.tieWordEmbeddings, "transformers' LlamaConfig defaults to untied")
        XCTAssertEqual(config.maxPositionEmbeddings, 2048)
        XCTAssertEqual(config.eosTokenIds, [])
    }

    func testExplicitHeadDimDifferentFromHiddenOverHeads() throws {
        var object = Self.baseObject
        object["head_dim"] = .integer(32)
        let config = try LlamaConfig(json: object)
        XCTAssertEqual(config.headDim, 32)
        XCTAssertEqual(config.qDim, 128)
        XCTAssertEqual(config.kvDim, 64)
        object["head_dim"] = .null
        XCTAssertEqual(try LlamaConfig(json: object).headDim, 16, "null head_dim means the default")
    }

    func testEOSTokenIdMayBeAList() throws {
        var object = Self.baseObject
        object["eos_token_id"] = .array([.integer(258), .integer(257)])
        let config = try LlamaConfig(json: object)
        XCTAssertEqual(config.eosTokenId, 258)
        XCTAssertEqual(config.eosTokenIds, [258, 257])
        let again = try JSONDecoder().decode(LlamaConfig.self, from: try config.jsonData())
        XCTAssertEqual(again.eosTokenIds, [258, 257], "a list is written back as a list")
    }

    func testNegativePadMeansNoPad() throws {
        var object = Self.baseObject
        object["pad_token_id"] = .integer(-1)
        XCTAssertNil(try LlamaConfig(json: object).padTokenId)
    }

    func testDefaultRopeParametersAccepted() throws {
        var object = Self.baseObject
        object["rope_theta"] = nil
        object["rope_scaling"] = .object(["rope_type": .string("default"), "rope_theta": .number(5e5)])
        XCTAssertEqual(try LlamaConfig(json: object).ropeTheta, 5e5)
        object["rope_scaling"] = .null
        object["rope_parameters"] = .object(["type": .string("default")])
        XCTAssertEqual(try LlamaConfig(json: object).ropeTheta, 10_000)
    }

    // MARK: - Refusals (each names its key)

    func testRefusesOtherModelType() {
        XCTAssertEqual(refusal(["model_type": .string("gpt2")])?.key, "model_type")
        XCTAssertEqual(refusal(["model_type": .string("qwen2_moe")])?.key, "model_type")
        XCTAssertEqual(refusal(["model_type": nil])?.key, "model_type")
    }

    func testRefusesUnknownRopeScaling() {
        let longrope: JSONValue = .object(["rope_type": .string("longrope"), "factor": .number(2)])
        let error = refusal(["rope_scaling": longrope])
        XCTAssertEqual(error?.key, "rope_scaling.rope_type")
        XCTAssertTrue(error?.problem.contains("\"longrope\"") ?? false, "names the value: \(String(describing: error))")
        XCTAssertEqual(refusal(["rope_parameters": .object(["rope_type": .string("su"), "factor": .number(8)])])?.key, "rope_parameters.rope_type")
        XCTAssertEqual(refusal(["rope_scaling": .object(["type": .string("dynamic")])])?.key, "rope_scaling.factor", "a factor is needed")
        XCTAssertEqual(refusal(["rope_scaling": .object(["type": .string("linear"), "factor": .number(-1)])])?.key, "rope_scaling.factor")
        XCTAssertEqual(refusal(["rope_scaling": .string("linear")])?.key, "rope_scaling")
        XCTAssertEqual(
            refusal(["rope_parameters": .object(["rope_type": .string("default"), "rope_theta": .number(7)])])?.key,
            "rope_parameters.rope_theta", "contradicting rope_theta values")
    }

    func testRefusesBiases() {
        XCTAssertEqual(refusal(["attention_bias": .bool(true)])?.key, "attention_bias")
        XCTAssertEqual(refusal(["mlp_bias": .bool(true)])?.key, "mlp_bias")
        XCTAssertEqual(refusal(["mlp_bias": .string("yes")])?.key, "mlp_bias")
    }

    func testRefusesSlidingWindow() {
        XCTAssertEqual(refusal(["sliding_window": .integer(4096)])?.key, "sliding_window")
        XCTAssertEqual(refusal(["use_sliding_window": .bool(true)])?.key, "use_sliding_window")
        XCTAssertNil(try? LlamaConfig(json: Self.baseObject.merging(["sliding_window": .integer(4)]) { $1 }))
        XCTAssertNoThrow(try LlamaConfig(json: Self.baseObject.merging(["sliding_window": .null, "use_sliding_window": .bool(false)]) { $1 }))
        XCTAssertNoThrow(try LlamaConfig(json: Self.baseObject.merging(["sliding_window": .integer(4096), "use_sliding_window": .bool(false)]) { $1 }),
                         "a window switched off explicitly")
    }

    func testRefusesOtherActivation() {
        let error = refusal(["hidden_act": .string("gelu")])
        XCTAssertEqual(error?.key, "hidden_act")
        XCTAssertTrue(error?.description.contains("gelu") ?? false)
    }

    func testRefusesHeadsThatDoNotDivide() {
        XCTAssertEqual(refusal(["num_key_value_heads": .integer(3)])?.key, "num_key_value_heads")
        XCTAssertEqual(refusal(["num_attention_heads": .integer(5), "num_key_value_heads": .integer(5)])?.key, "num_attention_heads")
        XCTAssertEqual(refusal(["head_dim": .integer(15)])?.key, "head_dim", "odd head_dim cannot be rotated")
    }

    func testRefusesMissingRequiredKeys() {
        for key in ["hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "vocab_size"] {
            let error = refusal([key: nil])
            XCTAssertEqual(error?.key, key)
            XCTAssertTrue(error?.problem.contains("missing") ?? false, "\(String(describing: error))")
        }
    }

    func testRefusesWrongTypesAndValues() {
        XCTAssertEqual(refusal(["hidden_size": .string("64")])?.key, "hidden_size")
        XCTAssertEqual(refusal(["hidden_size": .number(64.5)])?.key, "hidden_size")
        XCTAssertEqual(refusal(["vocab_size": .integer(0)])?.key, "vocab_size")
        XCTAssertEqual(refusal(["tie_word_embeddings": .integer(1)])?.key, "tie_word_embeddings")
        XCTAssertEqual(refusal(["rms_norm_eps": .string("1e-5")])?.key, "rms_norm_eps")
        XCTAssertEqual(refusal(["eos_token_id": .string("</s>")])?.key, "eos_token_id")
        XCTAssertEqual(refusal(["eos_token_id": .integer(259)])?.key, "eos_token_id", "outside the vocabulary")
        XCTAssertEqual(refusal(["bos_token_id": .integer(1000)])?.key, "bos_token_id")
        XCTAssertEqual(refusal(["quantization_config": .object(["bits": .integer(4)])])?.key, "quantization_config")
        // Sizes that would make the layout itself unmanageable are refused before it is built.
        XCTAssertEqual(refusal(["num_hidden_layers": .integer(1_000_000_000)])?.key, "num_hidden_layers")
        XCTAssertEqual(refusal(["vocab_size": .integer(1 << 40)])?.key, "hidden_size")
        XCTAssertEqual(refusal(["intermediate_size": .integer(Int64(1) << 62)])?.key, "hidden_size")
    }

    func testLoadNamesFileAndKey() throws {
        let directory = try freshTemporaryDirectory()
        let url = directory.appendingPathComponent("config.json")
        var object = Self.baseObject
        object["rope_scaling"] = .object(["rope_type": .string("longrope"), "factor": .number(4)])
        try JSONEncoder().encode(JSONValue.object(object)).write(to: url)
        XCTAssertThrowsError(try LlamaConfig.load(from: url)) { error in
            let message = String(describing: error)
            XCTAssertTrue(message.contains(url.path), message)
            XCTAssertTrue(message.contains("rope_scaling"), message)
        }
        try Data("{not json".utf8).write(to: url)
        XCTAssertThrowsError(try LlamaConfig.load(from: url)) { error in
            XCTAssertTrue(String(describing: error).contains(url.path))
        }
        XCTAssertThrowsError(try LlamaConfig.load(from: directory.appendingPathComponent("absent.json"))) { error in
            XCTAssertTrue(String(describing: error).contains("absent.json"))
        }
    }

    // MARK: - Writing

    func testEncodeRoundTripsAndSwitchesOffUnsupportedFeatures() throws {
        var config = LlamaPreset.tiny.config
        config.torchDtype = "float16"
        let data = try config.jsonData()
        XCTAssertEqual(try JSONDecoder().decode(LlamaConfig.self, from: data), config)

        let object = try XCTUnwrap(JSONDecoder().decode(JSONValue.self, from: data).objectValue)
        XCTAssertEqual(object["architectures"], .array([.string("LlamaForCausalLM")]))
        XCTAssertEqual(object["model_type"], .string("llama"))
        XCTAssertEqual(object["attention_bias"], .bool(false))
        XCTAssertEqual(object["mlp_bias"], .bool(false))
        XCTAssertEqual(object["rope_scaling"], .null)
        XCTAssertEqual(object["rope_theta"]?.doubleValue, 1e6)
        XCTAssertEqual(object["rope_parameters"]?.objectValue?["rope_type"], .string("default"))
        XCTAssertEqual(object["tie_word_embeddings"], .bool(true))
        XCTAssertEqual(object["torch_dtype"], .string("float16"))
        XCTAssertEqual(object["dtype"], .string("float16"))
        XCTAssertEqual(object["eos_token_id"], .integer(258))
        XCTAssertEqual(object["pad_token_id"], .integer(256))
        XCTAssertEqual(object["bos_token_id"], .null)
        XCTAssertEqual(object["head_dim"], .integer(16))
        XCTAssertEqual(object["rms_norm_eps"]?.doubleValue ?? 0, 1e-5, accuracy: 1e-12)
    }

    func testPresetsValidate() throws {
        for preset in LlamaPreset.allCases {
            XCTAssertNoThrow(try preset.config.validate(), "\(preset)")
            XCTAssertEqual(preset.config.checkedParameterCount(), ParameterLayout(config: preset.config).totalCount)
        }
        var untied = LlamaPreset.tiny.config
        untied.tieWordEmbeddings = false
        untied.headDim = 24
        XCTAssertEqual(untied.checkedParameterCount(), ParameterLayout(config: untied).totalCount)
    }
}

extension XCTestCase {
    /// A fresh empty directory under the system temporary directory, removed after the test.
    func freshTemporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("swift-dpo-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }
}

/// Real-world shaped configs and the JSON value parsing under them.
final class ConfigSourcesTests: XCTestCase {
    func testJSONValueKeepsKinds() throws {
        let value = try JSONDecoder().decode(JSONValue.self, from: Data(#"{"t": true, "f": false, "one": 1, "zero": 0, "eps": 1e-05, "big": 1e20, "s": "x", "n": null, "a": [1, 2.5]}"#.utf8))
        let object = try XCTUnwrap(value.objectValue)
        XCTAssertEqual(object["t"], .bool(true))
        XCTAssertEqual(object["f"], .bool(false))
        XCTAssertEqual(object["one"], .integer(1), "1 is a number, never true")
        XCTAssertEqual(object["zero"], .integer(0), "0 is a number, never false")
        XCTAssertEqual(object["eps"], .number(1e-5))
        XCTAssertEqual(object["big"]?.doubleValue, 1e20)
        XCTAssertEqual(object["s"], .string("x"))
        XCTAssertEqual(object["n"], .null)
        XCTAssertEqual(object["a"], .array([.integer(1), .number(2.5)]))
    }

    /// A SmolLM2-135M-shaped config.json (transformers 4.x keys, 9 heads / 3 kv heads, head_dim 64).
    func testSmolLMStyleConfig() throws {
        let text = """
        {"architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0, "bos_token_id": 0,
         "eos_token_id": 0, "hidden_act": "silu", "hidden_size": 576, "initializer_range": 0.041666666666666664,
         "intermediate_size": 1536, "is_llama_config": true, "max_position_embeddings": 8192, "mlp_bias": false,
         "model_type": "llama", "num_attention_heads": 9, "num_hidden_layers": 30, "num_key_value_heads": 3,
         "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_interleaved": false, "rope_scaling": null, "rope_theta": 100000,
         "tie_word_embeddings": true, "torch_dtype": "bfloat16", "transformers_version": "4.42.3", "use_cache": true,
         "vocab_size": 49152}
        """
        let config = try JSONDecoder().decode(LlamaConfig.self, from: Data(text.utf8))
        XCTAssertEqual(config.headDim, 64)
        XCTAssertEqual(config.numKeyValueHeads, 3)
        XCTAssertEqual(config.ropeTheta, 100_000)
        XCTAssertEqual(config.torchDtype, "bfloat16")
        XCTAssertEqual(config.eosTokenId, 0)
        XCTAssertEqual(ParameterLayout(config: config).totalCount, 134_515_008, "SmolLM2-135M's parameter count")
    }

    /// A Llama-3.2-shaped config: llama3 RoPE scaling is read with its parameters.
    func testLlama3RopeScalingRead() throws {
        let text = """
        {"model_type": "llama", "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
         "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256, "rope_theta": 500000.0,
         "eos_token_id": [128001, 128008, 128009], "bos_token_id": 128000, "tie_word_embeddings": true,
         "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                          "original_max_position_embeddings": 8192, "rope_type": "llama3"}}
        """
        let config = try JSONDecoder().decode(LlamaConfig.self, from: Data(text.utf8))
        XCTAssertEqual(config.rope, .llama3(factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192))
        XCTAssertEqual(config.ropeTheta, 500_000)
        XCTAssertNil(config.positionLimit, "llama3 RoPE does not depend on the row length")
    }
}
