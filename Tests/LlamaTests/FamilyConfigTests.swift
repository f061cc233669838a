import Foundation
import XCTest
@testable import Llama

/// How each family's config.json is read: defaults of its transformers config class, the
/// options that change the computation, and the refusals (each naming its key and value).
final class FamilyConfigTests: XCTestCase {
    static func object(_ modelType: String, _ changes: [String: JSONValue] = [:]) -> [String: JSONValue] {
        var object: [String: JSONValue] = [
            "model_type": .string(modelType), "hidden_size": .integer(64), "intermediate_size": .integer(128),
            "num_hidden_layers": .integer(2), "num_attention_heads": .integer(4), "num_key_value_heads": .integer(2),
            "vocab_size": .integer(300), "rope_theta": .number(1e6),
        ]
        for (key, value) in changes { object[key] = value }
        return object
    }

    func refusal(_ object: [String: JSONValue], file: StaticString = #filePath, line: UInt = #line) -> LlamaConfigError? {
        do {
            _ = try LlamaConfig(json: object)
            XCTFail("accepted", file: file, line: line)
        } catch let error as LlamaConfigError {
            return error
        } catch {
            XCTFail("\(error)", file: file, line: line)
        }
        return nil
    }

    func testFamilyDefaults() throws {
        let qwen3 = try LlamaConfig(json: Self.object("qwen3"))
        XCTAssertEqual(qwen3.headDim, 128, "Qwen3Config's head_dim default is 128, not hidden / heads")
        XCTAssertEqual(qwen3.maxPositionEmbeddings, 32768)
        XCTAssertEqual(ParameterLayout(config: qwen3).entry("model.layers.1.self_attn.k_norm.weight").shape, [128])
        let qwen2 = try LlamaConfig(json: Self.object("qwen2"))
        XCTAssertEqual(qwen2.headDim, 16)
        XCTAssertEqual(ParameterLayout(config: qwen2).entry("model.layers.0.self_attn.v_proj.bias").shape, [32])
        XCTAssertEqual(qwen2.checkedParameterCount(), ParameterLayout(config: qwen2).totalCount)
        XCTAssertEqual(qwen3.checkedParameterCount(), ParameterLayout(config: qwen3).totalCount)
        let mistral = try LlamaConfig(json: Self.object("mistral"))
        XCTAssertEqual(mistral.slidingWindow, 4096, "MistralConfig: an absent sliding_window is 4096")
        XCTAssertNil(try LlamaConfig(json: Self.object("mistral", ["sliding_window": .null])).slidingWindow)
        XCTAssertNil(try LlamaConfig(json: Self.object("mistral", ["sliding_window": .null])).positionLimit)
    }

    /// Qwen's window slides only with use_sliding_window, on the layers from max_window_layers
    /// on (or those layer_types marks): then rows longer than the window are refused.
    func testQwenSlidingWindow() throws {
        XCTAssertNil(try LlamaConfig(json: Self.object("qwen2", ["sliding_window": .integer(8)])).slidingWindow)
        let sliding = try LlamaConfig(json: Self.object("qwen2", [
            "use_sliding_window": .bool(true), "sliding_window": .integer(8), "max_window_layers": .integer(1)]))
        XCTAssertEqual(sliding.slidingWindow, 8)
        XCTAssertThrowsError(try sliding.checkRowLength(9)) { error in
            XCTAssertEqual((error as? LlamaConfigError)?.key, "sliding_window")
        }
        XCTAssertNoThrow(try sliding.checkRowLength(8))
        XCTAssertNil(try LlamaConfig(json: Self.object("qwen2", [
            "use_sliding_window": .bool(true), "sliding_window": .integer(8), "max_window_layers": .integer(2)])).slidingWindow,
            "no layer from max_window_layers on")
        XCTAssertEqual(try LlamaConfig(json: Self.object("qwen3", [
            "use_sliding_window": .bool(true), "sliding_window": .integer(8),
            "layer_types": .array([.string("full_attention"), .string("sliding_attention")])])).slidingWindow, 8)
    }

    /// The hub's spelling (rope_theta + rope_scaling with `type`) and transformers 5's
    /// (rope_parameters with rope_theta inside) read to the same config.
    func testBothRopeSpellings() throws {
        let hub = try LlamaConfig(json: Self.object("llama", [
            "rope_theta": .number(5e5),
            "rope_scaling": .object(["type": .string("yarn"), "factor": .number(4), "original_max_position_embeddings": .integer(32)])]))
        var v5Object = Self.object("llama", ["rope_parameters": .object([
            "rope_type": .string("yarn"), "rope_theta": .number(5e5), "factor": .number(4), "original_max_position_embeddings": .integer(32)])])
        v5Object["rope_theta"] = nil
        let v5 = try LlamaConfig(json: v5Object)
        XCTAssertEqual(hub, v5)
        XCTAssertEqual(hub.rope, .yarn(.init(factor: 4, originalMaxPositions: 32)))
        XCTAssertEqual(hub.ropeTheta, 5e5)
        // Yarn's attention factor: 0.1 ln(4) + 1, as transformers' get_mscale.
        XCTAssertEqual(hub.rope.attentionScaling, Float(0.1 * log(4.0) + 1), accuracy: 1e-7)
        XCTAssertEqual(try LlamaConfig(json: try JSONDecoder().decode(JSONValue.self, from: hub.jsonData()).objectValue!), hub,
                       "written and read back")
    }

    /// Llama 3's frequency rule at its three regions (transformers' _compute_llama3_parameters).
    func testLlama3Frequencies() {
        let base = RopeScaling.defaultInverseFrequencies(theta: 1e4, headDim: 8)  // 1, 0.1, 0.01, 0.001
        let scaled = RopeScaling.llama3(factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8)
            .inverseFrequencies(theta: 1e4, headDim: 8)
        // Wavelength 2π (between 8/4 and 8/1): smoothed; the rest (> 8): divided by the factor.
        let smooth = (8 / (2 * Float.pi) - 1) / (4 - 1)
        XCTAssertEqual(scaled[0], (1 - smooth) * base[0] / 8 + smooth * base[0], accuracy: 1e-6)
        for i in 1..<4 { XCTAssertEqual(scaled[i], base[i] / 8, accuracy: 1e-9) }
    }

    func testRefusals() {
        XCTAssertEqual(refusal(Self.object("qwen3", ["attention_bias": .bool(true)]))?.key, "attention_bias")
        XCTAssertEqual(refusal(Self.object("llama", ["attention_bias": .bool(true)]))?.key, "attention_bias")
        XCTAssertEqual(refusal(Self.object("qwen2", ["num_experts": .integer(8)]))?.key, "num_experts")
        XCTAssertEqual(refusal(Self.object("mistral", ["num_local_experts": .integer(8)]))?.key, "num_local_experts")
        XCTAssertEqual(refusal(Self.object("llama", ["alibi": .bool(true)]))?.key, "alibi")
        XCTAssertEqual(refusal(Self.object("llama", ["partial_rotary_factor": .number(0.5)]))?.key, "partial_rotary_factor")
        XCTAssertEqual(refusal(Self.object("qwen2", ["layer_types": .array([.string("linear_attention"), .string("full_attention")])]))?.key,
                       "layer_types")
        XCTAssertEqual(refusal(Self.object("mistral", ["sliding_window": .integer(0)]))?.key, "sliding_window")
        let perLayer = refusal(Self.object("llama", ["rope_parameters": .object([
            "full_attention": .object(["rope_type": .string("default")])])]))
        XCTAssertEqual(perLayer?.key, "rope_parameters")
        let longrope = refusal(Self.object("llama", ["rope_scaling": .object(["rope_type": .string("longrope")])]))
        XCTAssertEqual(longrope?.key, "rope_scaling.rope_type")
        XCTAssertTrue(longrope?.description.contains("longrope") ?? false)
    }

    /// A refused config.json names the file as well as the key and the value.
    func testRefusalNamesTheFile() throws {
        let directory = try freshTemporaryDirectory()
        let url = directory.appendingPathComponent("config.json")
        try JSONEncoder().encode(JSONValue.object(Self.object("qwen2", ["num_experts": .integer(60)]))).write(to: url)
        XCTAssertThrowsError(try LlamaConfig.load(from: url)) { error in
            let message = String(describing: error)
            XCTAssertTrue(message.contains(url.path) && message.contains("num_experts") && message.contains("60"), message)
        }
    }
}

/// The presets shaped like real checkpoints have those checkpoints' parameter counts.
final class RealShapePresetTests: XCTestCase {
    func testParameterCounts() throws {
        let smol = LlamaPreset(rawValue: "smollm2-135m")!.config
        XCTAssertEqual(smol.family, .llama)
        XCTAssertEqual(smol.headDim, 64)
        XCTAssertEqual(ParameterLayout(config: smol).totalCount, 134_515_008, "SmolLM2-135M")
        let qwen = LlamaPreset(rawValue: "qwen2.5-0.5b")!.config
        XCTAssertEqual(qwen.family, .qwen2)
        XCTAssertTrue(qwen.hasQKVBias)
        XCTAssertEqual(qwen.headDim, 64)
        XCTAssertEqual(ParameterLayout(config: qwen).totalCount, 494_032_768, "Qwen2.5-0.5B (tied)")
        let object = try XCTUnwrap(JSONDecoder().decode(JSONValue.self, from: qwen.jsonData()).objectValue)
        XCTAssertEqual(object["architectures"], .array([.string("Qwen2ForCausalLM")]))
        XCTAssertNoThrow(try qwen.validate())
    }
}
