import Foundation

/// A `config.json` (or a `LlamaConfig`) this model cannot honour or cannot read.
public struct LlamaConfigError: Error, CustomStringConvertible, LocalizedError, Equatable {
    /// Path of the `config.json`, when the config came from a file.
    public var file: String?
    /// The offending key (`nil` for a whole-file problem such as invalid JSON).
    public var key: String?
    public var problem: String

    public init(file: String? = nil, key: String?, problem: String) {
        self.file = file
        self.key = key
        self.problem = problem
    }

    public var description: String {
        let place = file ?? "config"
        if let key { return "\(place): key \"\(key)\": \(problem)" }
        return "\(place): \(problem)"
    }

    public var errorDescription: String? { description }
}

// MARK: - Decoding a config.json object

extension LlamaConfig {
    /// Builds a config from a parsed `config.json` object, refusing anything this model does
    /// not compute:
    /// - `model_type` other than those of `ModelFamily`; a `quantization_config`;
    /// - a RoPE variant other than those of `RopeScaling`, `partial_rotary_factor` below 1;
    /// - biases the family does not have (`attention_bias` or `mlp_bias` true);
    /// - for `llama`, a `sliding_window` (transformers' Llama has none) unless switched off;
    /// - mixture-of-experts or ALiBi keys (`ConfigFamilies.swift`);
    /// - `hidden_act` other than `silu` (`swish` is the same function);
    /// - heads that do not divide (`num_attention_heads % num_key_value_heads`, or
    ///   `hidden_size % num_attention_heads` when `head_dim` is absent), odd `head_dim`;
    /// - missing required sizes, values of the wrong JSON type, non-positive sizes,
    ///   token ids outside the vocabulary.
    /// `attention_dropout` is ignored: it only acts in training mode, and DPO trainers
    /// (TRL's `disable_dropout=True` default) switch it off.
    init(json object: [String: JSONValue]) throws {
        let reader = ConfigReader(object: object)

        let modelType = try reader.requiredString("model_type")
        guard let family = ModelFamily(rawValue: modelType) else {
            throw LlamaConfigError(
                key: "model_type",
                problem: "is \"\(modelType)\"; only \(ModelFamily.supportedList) models can be trained here")
        }
        if let quantization = object["quantization_config"], !quantization.isNull {
            throw LlamaConfigError(
                key: "quantization_config",
                problem: "quantized checkpoints are not supported; use the unquantized float32/float16/bfloat16 weights")
        }
        try reader.refuseUnsupportedArchitectureKeys()

        let hiddenSize = try reader.requiredPositiveInt("hidden_size")
        let intermediateSize = try reader.requiredPositiveInt("intermediate_size")
        let numHiddenLayers = try reader.requiredPositiveInt("num_hidden_layers")
        let numAttentionHeads = try reader.requiredPositiveInt("num_attention_heads")
        let vocabSize = try reader.requiredPositiveInt("vocab_size")
        let numKeyValueHeads = try reader.optionalPositiveInt("num_key_value_heads") ?? numAttentionHeads
        let explicitHeadDim = try reader.optionalPositiveInt("head_dim")
            ?? family.defaultHeadDim(hiddenSize: hiddenSize, heads: numAttentionHeads)
        if explicitHeadDim == nil, hiddenSize % numAttentionHeads != 0 {
            throw LlamaConfigError(
                key: "num_attention_heads",
                problem: "\(numAttentionHeads) does not divide hidden_size \(hiddenSize) and there is no head_dim")
        }

        let rmsNormEps = try reader.optionalNumber("rms_norm_eps") ?? 1e-6
        let ropeTheta = try reader.ropeTheta()
        let tieWordEmbeddings = try reader.optionalBool("tie_word_embeddings") ?? false
        let maxPositionEmbeddings = try reader.optionalPositiveInt("max_position_embeddings") ?? family.defaultMaxPositions

        self.init(
            hiddenSize: hiddenSize, intermediateSize: intermediateSize, numHiddenLayers: numHiddenLayers,
            numAttentionHeads: numAttentionHeads, numKeyValueHeads: numKeyValueHeads, headDim: explicitHeadDim,
            vocabSize: vocabSize, rmsNormEps: Float(rmsNormEps), ropeTheta: Float(ropeTheta),
            tieWordEmbeddings: tieWordEmbeddings, maxPositionEmbeddings: maxPositionEmbeddings)
        self.modelType = modelType
        self.bosTokenId = try reader.optionalInt("bos_token_id")
        self.eosTokenIds = try reader.tokenIdList("eos_token_id")
        // A negative pad id (seen in early LLaMA conversions) means "no pad token".
        if let pad = try reader.optionalInt("pad_token_id"), pad >= 0 { self.padTokenId = pad }
        self.hiddenAct = try reader.optionalString("hidden_act") ?? "silu"
        self.torchDtype = try reader.optionalString("torch_dtype") ?? reader.optionalString("dtype")
        self.rope = try reader.ropeScaling(maxPositionEmbeddings: maxPositionEmbeddings)
        try reader.refuseBiases(family)
        self.slidingWindow = try reader.slidingWindow(family, layers: numHiddenLayers)
        self.otherKeys = object.filter { !Self.interpretedKeys.contains($0.key) }
        try validate()
    }

    // MARK: - Validation of any config

    /// Checks what the model needs whatever the source of the config (file, preset, code).
    public func validate() throws {
        guard ModelFamily(rawValue: modelType) != nil else {
            throw LlamaConfigError(key: "model_type", problem: "is \"\(modelType)\"; only \(ModelFamily.supportedList) are supported")
        }
        if let window = slidingWindow, window <= 0 {
            throw LlamaConfigError(key: "sliding_window", problem: "is \(window); it must be a positive integer")
        }
        for (key, value) in [("hidden_size", hiddenSize), ("intermediate_size", intermediateSize),
                             ("num_hidden_layers", numHiddenLayers), ("num_attention_heads", numAttentionHeads),
                             ("num_key_value_heads", numKeyValueHeads), ("head_dim", headDim),
                             ("vocab_size", vocabSize), ("max_position_embeddings", maxPositionEmbeddings)]
        where value <= 0 {
            throw LlamaConfigError(key: key, problem: "is \(value); it must be a positive integer")
        }
        guard numHiddenLayers <= Self.maximumLayers else {
            throw LlamaConfigError(key: "num_hidden_layers", problem: "is \(numHiddenLayers); more than \(Self.maximumLayers) layers is not a model this trainer can hold")
        }
        guard let parameters = checkedParameterCount(), parameters <= Self.maximumParameters else {
            throw LlamaConfigError(
                key: "hidden_size",
                problem: "with these sizes (vocab \(vocabSize), hidden \(hiddenSize), ffn \(intermediateSize), \(numHiddenLayers) layers) the model has more than \(Self.maximumParameters) parameters")
        }
        guard numAttentionHeads % numKeyValueHeads == 0 else {
            throw LlamaConfigError(
                key: "num_key_value_heads",
                problem: "\(numKeyValueHeads) does not divide num_attention_heads \(numAttentionHeads) (grouped-query attention needs it)")
        }
        guard headDim % 2 == 0 else {
            throw LlamaConfigError(key: "head_dim", problem: "is \(headDim); rotary embeddings need an even head_dim")
        }
        guard hiddenAct == "silu" || hiddenAct == "swish" else {
            throw LlamaConfigError(key: "hidden_act", problem: "is \"\(hiddenAct)\"; only \"silu\" (SwiGLU) is implemented")
        }
        guard rmsNormEps > 0, rmsNormEps.isFinite else {
            throw LlamaConfigError(key: "rms_norm_eps", problem: "is \(rmsNormEps); it must be a positive number")
        }
        guard ropeTheta > 0, ropeTheta.isFinite else {
            throw LlamaConfigError(key: "rope_theta", problem: "is \(ropeTheta); it must be a positive number")
        }
        for (key, id) in [("bos_token_id", bosTokenId), ("pad_token_id", padTokenId)] {
            if let id, !(0..<vocabSize).contains(id) {
                throw LlamaConfigError(key: key, problem: "\(id) is outside the vocabulary 0..<\(vocabSize)")
            }
        }
        for id in eosTokenIds where !(0..<vocabSize).contains(id) {
            throw LlamaConfigError(key: "eos_token_id", problem: "\(id) is outside the vocabulary 0..<\(vocabSize)")
        }
    }
}

// MARK: - Size limits

extension LlamaConfig {
    /// Bounds that keep a hostile or mistyped config from making the layout itself huge
    /// (the layout is built before any weight file is looked at).
    static let maximumLayers = 10_000
    static let maximumParameters = 1 << 40

    /// The parameter count of this architecture, or nil if it overflows `Int`.
    func checkedParameterCount() -> Int? {
        func multiply(_ values: Int...) -> Int? {
            var product = 1
            for value in values {
                let (result, overflow) = product.multipliedReportingOverflow(by: value)
                if overflow { return nil }
                product = result
            }
            return product
        }
        guard let embedding = multiply(vocabSize, hiddenSize),
              let query = multiply(numAttentionHeads, headDim, hiddenSize),
              let keyValue = multiply(2, numKeyValueHeads, headDim, hiddenSize),
              let mlp = multiply(3, intermediateSize, hiddenSize)
        else { return nil }
        // Norms, plus the q/k/v biases (Qwen2) and the two per-head norms (Qwen3): small, bounded by the matrices.
        var perLayer = 2 * hiddenSize + (hasQKVBias ? qDim + kvDim * 2 : 0) + (hasQueryKeyNorm ? 2 * headDim : 0)
        for part in [query, query, keyValue, mlp] {
            let (sum, overflow) = perLayer.addingReportingOverflow(part)
            if overflow { return nil }
            perLayer = sum
        }
        guard let layers = multiply(perLayer, numHiddenLayers) else { return nil }
        let heads = tieWordEmbeddings ? embedding : (embedding.multipliedReportingOverflow(by: 2).overflow ? nil : 2 * embedding)
        guard let heads else { return nil }
        // Every sum checked too: untied heads near Int.max plus the final norm used to wrap negative.
        let (headsAndNorm, headsOverflow) = heads.addingReportingOverflow(hiddenSize)
        let (total, overflow) = layers.addingReportingOverflow(headsAndNorm)
        return overflow || headsOverflow ? nil : total
    }
}

// MARK: - Typed, key-naming access to a config.json object

/// Reads keys of a `config.json` object; every failure names the key and what was found.
struct ConfigReader {
    let object: [String: JSONValue]

    /// The value of `key`, treating JSON null as absent.
    func present(_ key: String) -> JSONValue? {
        guard let value = object[key], !value.isNull else { return nil }
        return value
    }

    func requiredString(_ key: String) throws -> String {
        guard let value = try optionalString(key) else { throw missing(key) }
        return value
    }

    func optionalString(_ key: String) throws -> String? {
        guard let value = present(key) else { return nil }
        guard let string = value.stringValue else { throw wrongType(key, "a string", value) }
        return string
    }

    func requiredPositiveInt(_ key: String) throws -> Int {
        guard let value = try optionalPositiveInt(key) else { throw missing(key) }
        return value
    }

    func optionalPositiveInt(_ key: String) throws -> Int? {
        guard let value = try optionalInt(key) else { return nil }
        guard value > 0 else { throw LlamaConfigError(key: key, problem: "is \(value); it must be a positive integer") }
        return value
    }

    func optionalInt(_ key: String) throws -> Int? {
        guard let value = present(key) else { return nil }
        guard case .integer = value, let int = value.intValue else { throw wrongType(key, "an integer", value) }
        return int
    }

    func optionalNumber(_ key: String) throws -> Double? {
        guard let value = present(key) else { return nil }
        guard let number = value.doubleValue else { throw wrongType(key, "a number", value) }
        return number
    }

    func optionalBool(_ key: String) throws -> Bool? {
        guard let value = present(key) else { return nil }
        guard let bool = value.boolValue else { throw wrongType(key, "true or false", value) }
        return bool
    }

    /// `eos_token_id`: an integer, a non-empty list of integers, or null.
    func tokenIdList(_ key: String) throws -> [Int] {
        guard let value = present(key) else { return [] }
        if case .integer = value, let id = value.intValue { return [id] }
        if let list = value.arrayValue, !list.isEmpty {
            return try list.map { element in
                guard case .integer = element, let id = element.intValue else {
                    throw wrongType(key, "an integer or a list of integers", value)
                }
                return id
            }
        }
        throw wrongType(key, "an integer or a non-empty list of integers", value)
    }

    /// `rope_theta` from the top level (transformers 4) or from `rope_parameters` /
    /// `rope_scaling` (transformers 5); the two must agree when both are given.
    func ropeTheta() throws -> Double {
        var theta = try optionalNumber("rope_theta")
        for key in ["rope_scaling", "rope_parameters"] {
            guard let value = present(key) else { continue }
            guard let parameters = value.objectValue else { throw wrongType(key, "null or an object", value) }
            if let nested = parameters["rope_theta"], !nested.isNull {
                guard let nestedTheta = nested.doubleValue else { throw wrongType(key + ".rope_theta", "a number", nested) }
                // Compared as the Float the model uses: `encode` writes rope_theta as Float text and the
                // nested copy as the widened Double, which differ in decimal for thetas such as 1e11.
                if let theta, Float(theta) != Float(nestedTheta) {
                    throw LlamaConfigError(
                        key: key + ".rope_theta", problem: "is \(nestedTheta) but rope_theta is \(theta); they must agree")
                }
                theta = nestedTheta
            }
        }
        return theta ?? 10_000
    }

    func missing(_ key: String) -> LlamaConfigError {
        LlamaConfigError(key: key, problem: "is missing; the config.json must give it")
    }

    func wrongType(_ key: String, _ expected: String, _ found: JSONValue) -> LlamaConfigError {
        LlamaConfigError(key: key, problem: "expected \(expected), found \(found.kindDescription)")
    }
}
