// Reading and writing the keys that differ between model families: the RoPE variant, biases,
// sliding windows, and the architecture keys this model refuses (MoE, ALiBi, partial RoPE).

// MARK: - Reading

extension ConfigReader {
    /// Mixture-of-experts, ALiBi, partial rotary embeddings and per-layer attention types other
    /// than full/sliding: architectures this model does not compute, refused before anything is allocated.
    func refuseUnsupportedArchitectureKeys() throws {
        for key in ["num_experts", "num_local_experts", "n_routed_experts", "num_experts_per_tok", "moe_intermediate_size"] {
            if let value = present(key), value != .integer(0) {
                throw LlamaConfigError(key: key, problem: "is \(value.kindDescription); mixture-of-experts models are not supported")
            }
        }
        for key in ["alibi", "use_alibi"] where try optionalBool(key) == true {
            throw LlamaConfigError(key: key, problem: "is true; ALiBi attention biases are not implemented (this model uses RoPE)")
        }
        if let type = try optionalString("position_embedding_type"), type != "rope", type != "rotary" {
            throw LlamaConfigError(key: "position_embedding_type", problem: "is \"\(type)\"; only rotary position embeddings are implemented")
        }
        if let factor = try optionalNumber("partial_rotary_factor"), factor != 1 {
            throw LlamaConfigError(key: "partial_rotary_factor", problem: "is \(factor); only RoPE over the whole head (1.0) is implemented")
        }
        if let types = present("layer_types") {
            guard let list = types.arrayValue else { throw wrongType("layer_types", "a list of strings", types) }
            for entry in list where entry != .string("full_attention") && entry != .string("sliding_attention") {
                throw LlamaConfigError(key: "layer_types", problem: "holds \(entry.kindDescription); only \"full_attention\" and \"sliding_attention\" layers exist here")
            }
        }
    }

    /// The RoPE variant. transformers 5 takes `rope_scaling` when it is a non-empty object, else
    /// `rope_parameters`; `type` is the older spelling of `rope_type`. Unknown types are refused
    /// naming the key and the value.
    func ropeScaling(maxPositionEmbeddings: Int) throws -> RopeScaling {
        var key = "rope_scaling"
        var parameters = present(key)?.objectValue ?? [:]
        if parameters.isEmpty {
            key = "rope_parameters"
            parameters = present(key)?.objectValue ?? [:]
        }
        if parameters.values.contains(where: { $0.objectValue != nil }) {
            throw LlamaConfigError(key: key, problem: "gives RoPE parameters per layer type; one RoPE for every layer is implemented")
        }
        let typeValue = parameters["rope_type"] ?? parameters["type"] ?? .string("default")
        guard let type = typeValue.stringValue else { throw wrongType(key + ".rope_type", "a string", typeValue) }
        let nested = ConfigReader(object: parameters)
        func number(_ name: String) throws -> Double? {
            do { return try nested.optionalNumber(name) } catch var error as LlamaConfigError {
                error.key = key + "." + name
                throw error
            }
        }
        func factor(required: Bool = true) throws -> Double? {
            guard let value = try number("factor") else {
                if required { throw LlamaConfigError(key: key + ".factor", problem: "is missing; rope_type \"\(type)\" needs it") }
                return nil
            }
            guard value > 0, value.isFinite else { throw LlamaConfigError(key: key + ".factor", problem: "is \(value); it must be positive") }
            return value
        }
        // transformers gives a top-level original_max_position_embeddings priority (Phi-3 style configs).
        let original = try optionalPositiveInt("original_max_position_embeddings")
            ?? nested.optionalPositiveInt("original_max_position_embeddings") ?? maxPositionEmbeddings
        switch type {
        case "default":
            return .none
        case "linear":
            return .linear(factor: try factor()!)
        case "dynamic":
            return .dynamic(factor: try factor()!)
        case "llama3":
            let low = try number("low_freq_factor") ?? 1, high = try number("high_freq_factor") ?? 4
            guard high != low else {
                throw LlamaConfigError(key: key + ".high_freq_factor", problem: "equals low_freq_factor \(low); the smoothing ramp needs them apart")
            }
            return .llama3(factor: try factor()!, lowFreqFactor: low, highFreqFactor: high, originalMaxPositions: original)
        case "yarn":
            var yarn = RopeScaling.Yarn(factor: try factor(required: false) ?? Double(maxPositionEmbeddings) / Double(original),
                                        originalMaxPositions: original, attentionFactor: try number("attention_factor"))
            // transformers: `beta_fast or 32`, so 0 and null both mean the default.
            if let fast = try number("beta_fast"), fast != 0 { yarn.betaFast = fast }
            if let slow = try number("beta_slow"), slow != 0 { yarn.betaSlow = slow }
            yarn.mscale = try number("mscale")
            yarn.mscaleAllDim = try number("mscale_all_dim")
            yarn.truncate = try nested.optionalBool("truncate") ?? true
            return .yarn(yarn)
        default:
            throw LlamaConfigError(
                key: key + ".rope_type",
                problem: "is \"\(type)\"; only the RoPE types default, linear, dynamic, llama3 and yarn are implemented, so this model would compute different outputs")
        }
    }

    /// Biases the family would add that this model does not have: Llama's `attention_bias`
    /// (q/k/v and o_proj) and `mlp_bias`, Qwen3's `attention_bias` (q/k/v and o_proj). Qwen2's
    /// q/k/v biases are always there and implemented; Mistral has none whatever the keys say.
    func refuseBiases(_ family: ModelFamily) throws {
        let keys: [String]
        switch family {
        case .llama: keys = ["attention_bias", "mlp_bias"]
        case .qwen3: keys = ["attention_bias"]
        case .qwen2, .mistral: keys = []
        }
        for key in keys where try optionalBool(key) == true {
            throw LlamaConfigError(key: key, problem: "is true; this \(family.rawValue) model would have o_proj/MLP biases, which are not implemented")
        }
    }

    /// The window of the sliding layers, or nil when no layer slides, as each family's
    /// transformers config decides it.
    func slidingWindow(_ family: ModelFamily, layers: Int) throws -> Int? {
        switch family {
        case .llama:
            // transformers' Llama has no window: a window here would be a mislabelled config.
            if let window = present("sliding_window"), window != .bool(false), try optionalBool("use_sliding_window") != false {
                throw LlamaConfigError(
                    key: "sliding_window", problem: "is \(window.kindDescription); a llama model has full causal attention")
            }
            if try optionalBool("use_sliding_window") == true {
                throw LlamaConfigError(key: "use_sliding_window", problem: "is true; a llama model has full causal attention")
            }
            return nil
        case .mistral:
            // MistralConfig: absent means 4096, null means no window.
            if object["sliding_window"] == nil { return 4096 }
            return try optionalPositiveInt("sliding_window")
        case .qwen2, .qwen3:
            // Qwen2Config/Qwen3Config: the window applies only with use_sliding_window, to the
            // layers `layer_types` marks as sliding (by default those from max_window_layers on).
            guard try optionalBool("use_sliding_window") == true else { return nil }
            guard let window = object["sliding_window"] == nil ? 4096 : try optionalPositiveInt("sliding_window") else { return nil }
            if let types = present("layer_types")?.arrayValue {
                return types.contains(.string("sliding_attention")) ? window : nil
            }
            let firstSliding = try optionalInt("max_window_layers") ?? 28
            return layers > firstSliding ? window : nil
        }
    }
}

// MARK: - Writing

extension LlamaConfig {
    /// Keys whose values `encodedKeys` writes (or deliberately drops): the rest of a loaded
    /// config.json goes to `otherKeys` and is written back unchanged.
    static let interpretedKeys: Set<String> = [
        "architectures", "model_type", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
        "num_key_value_heads", "head_dim", "vocab_size", "rms_norm_eps", "rope_theta", "rope_scaling", "rope_parameters",
        "tie_word_embeddings", "max_position_embeddings", "bos_token_id", "eos_token_id", "pad_token_id", "hidden_act",
        "torch_dtype", "dtype", "attention_bias", "mlp_bias", "pretraining_tp",
    ]

    /// A Float as the shortest decimal that reads back as it (1e-06, not 9.99999997e-07).
    static func decimal(_ value: Float) -> JSONValue { .number(Double("\(value)") ?? Double(value)) }

    /// The `rope_scaling` object (nil for plain RoPE) and the `rope_parameters` object of transformers 5.
    func ropeObjects() -> (scaling: JSONValue, parameters: JSONValue) {
        var object: [String: JSONValue] = ["rope_type": .string(rope.typeName)]
        switch rope {
        case .none: break
        case .linear(let factor), .dynamic(let factor):
            object["factor"] = .number(factor)
        case let .llama3(factor, low, high, original):
            object["factor"] = .number(factor)
            object["low_freq_factor"] = .number(low)
            object["high_freq_factor"] = .number(high)
            object["original_max_position_embeddings"] = .integer(Int64(original))
        case .yarn(let y):
            object["factor"] = .number(y.factor)
            object["original_max_position_embeddings"] = .integer(Int64(y.originalMaxPositions))
            object["beta_fast"] = .number(y.betaFast)
            object["beta_slow"] = .number(y.betaSlow)
            object["truncate"] = .bool(y.truncate)
            if let a = y.attentionFactor { object["attention_factor"] = .number(a) }
            if let m = y.mscale { object["mscale"] = .number(m) }
            if let m = y.mscaleAllDim { object["mscale_all_dim"] = .number(m) }
        }
        let scaling: JSONValue = rope == .none ? .null : .object(object)
        object["rope_theta"] = Self.decimal(ropeTheta)
        return (scaling, .object(object))
    }

    /// Every key this config writes, by family (see `encode(to:)`).
    func encodedKeys() throws -> [String: JSONValue] {
        func int(_ value: Int) -> JSONValue { .integer(Int64(value)) }
        func optionalInt(_ value: Int?) -> JSONValue { value.map(int) ?? .null }
        var object: [String: JSONValue] = [
            "architectures": .array([.string(family.architecture)]),
            "model_type": .string(modelType),
            "hidden_size": int(hiddenSize), "intermediate_size": int(intermediateSize),
            "num_hidden_layers": int(numHiddenLayers), "num_attention_heads": int(numAttentionHeads),
            "num_key_value_heads": int(numKeyValueHeads), "head_dim": int(headDim), "vocab_size": int(vocabSize),
            "rms_norm_eps": Self.decimal(rmsNormEps),
            // transformers 4 reads rope_theta + rope_scaling, transformers 5 reads rope_parameters.
            "rope_theta": Self.decimal(ropeTheta),
            "tie_word_embeddings": .bool(tieWordEmbeddings), "max_position_embeddings": int(maxPositionEmbeddings),
            "bos_token_id": optionalInt(bosTokenId),
            "eos_token_id": eosTokenIds.count > 1 ? .array(eosTokenIds.map { .integer(Int64($0)) }) : optionalInt(eosTokenIds.first),
            "pad_token_id": optionalInt(padTokenId), "hidden_act": .string(hiddenAct),
        ]
        (object["rope_scaling"], object["rope_parameters"]) = ropeObjects()
        if let torchDtype {
            object["torch_dtype"] = .string(torchDtype)
            object["dtype"] = .string(torchDtype)
        }
        // Defaults of keys transformers reads but this model ignores, unless the loaded file had them.
        for (key, value) in [("attention_dropout", JSONValue.number(0)), ("initializer_range", .number(0.02)), ("use_cache", .bool(true))]
        where otherKeys[key] == nil {
            object[key] = value
        }
        switch family {
        case .llama:
            object["attention_bias"] = .bool(false)
            object["mlp_bias"] = .bool(false)
            object["pretraining_tp"] = int(1)
        case .qwen3:
            object["attention_bias"] = .bool(false)
        case .mistral:
            object["sliding_window"] = optionalInt(slidingWindow)
        case .qwen2:
            break
        }
        return object
    }
}
