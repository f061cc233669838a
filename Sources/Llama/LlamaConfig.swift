import Foundation

/// The architecture of a LLaMA-family causal LM, decoded from a Hugging Face `config.json`.
///
/// Only what this model computes is accepted: a config asking for something else
/// (another `model_type`, `rope_scaling`, biases, sliding windows, ...) is refused
/// (see `ConfigValidation.swift`) with a message naming the key, never silently run as a
/// different model. Keys missing from a `config.json` take the defaults of transformers'
/// `LlamaConfig`, except the five sizes (`hidden_size`, `intermediate_size`,
/// `num_hidden_layers`, `num_attention_heads`, `vocab_size`), which are required.
///
/// Encoding writes a `config.json` that transformers (4.x and 5.x) loads as `LlamaForCausalLM`.
public struct LlamaConfig: Codable, Equatable, Sendable {
    public var modelType: String = "llama"
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int
    public var numKeyValueHeads: Int
    /// Per-head width; Hugging Face defaults it to hidden_size / num_attention_heads.
    public var headDim: Int
    public var vocabSize: Int
    public var rmsNormEps: Float
    public var ropeTheta: Float
    public var tieWordEmbeddings: Bool
    public var maxPositionEmbeddings: Int
    public var bosTokenId: Int?
    /// Every end-of-sequence id (`eos_token_id` may be an int or a list in `config.json`);
    /// the first one is *the* EOS appended to completions.
    public var eosTokenIds: [Int]
    public var padTokenId: Int?
    public var hiddenAct: String = "silu"
    /// `torch_dtype` (transformers 4) / `dtype` (transformers 5): the dtype of the stored weights.
    public var torchDtype: String?

    /// The end-of-sequence id appended to completions (the first of `eosTokenIds`).
    public var eosTokenId: Int? {
        get { eosTokenIds.first }
        set { eosTokenIds = newValue.map { [$0] } ?? [] }
    }

    public init(
        hiddenSize: Int, intermediateSize: Int, numHiddenLayers: Int, numAttentionHeads: Int,
        numKeyValueHeads: Int, headDim: Int? = nil, vocabSize: Int, rmsNormEps: Float = 1e-5,
        ropeTheta: Float = 1e6, tieWordEmbeddings: Bool = true, maxPositionEmbeddings: Int = 1024,
        bosTokenId: Int? = nil, eosTokenId: Int? = nil, padTokenId: Int? = nil
    ) {
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.numHiddenLayers = numHiddenLayers
        self.numAttentionHeads = numAttentionHeads
        self.numKeyValueHeads = numKeyValueHeads
        self.headDim = headDim ?? hiddenSize / max(numAttentionHeads, 1)
        self.vocabSize = vocabSize
        self.rmsNormEps = rmsNormEps
        self.ropeTheta = ropeTheta
        self.tieWordEmbeddings = tieWordEmbeddings
        self.maxPositionEmbeddings = maxPositionEmbeddings
        self.bosTokenId = bosTokenId
        self.eosTokenIds = eosTokenId.map { [$0] } ?? []
        self.padTokenId = padTokenId
    }

    /// Hugging Face `config.json` keys.
    enum CodingKeys: String, CodingKey {
        case architectures
        case modelType = "model_type"
        case hiddenSize = "hidden_size"
        case intermediateSize = "intermediate_size"
        case numHiddenLayers = "num_hidden_layers"
        case numAttentionHeads = "num_attention_heads"
        case numKeyValueHeads = "num_key_value_heads"
        case headDim = "head_dim"
        case vocabSize = "vocab_size"
        case rmsNormEps = "rms_norm_eps"
        case ropeTheta = "rope_theta"
        case ropeScaling = "rope_scaling"
        case ropeParameters = "rope_parameters"
        case tieWordEmbeddings = "tie_word_embeddings"
        case maxPositionEmbeddings = "max_position_embeddings"
        case bosTokenId = "bos_token_id"
        case eosTokenId = "eos_token_id"
        case padTokenId = "pad_token_id"
        case hiddenAct = "hidden_act"
        case torchDtype = "torch_dtype"
        case dtype
        case attentionBias = "attention_bias"
        case mlpBias = "mlp_bias"
        case attentionDropout = "attention_dropout"
        case initializerRange = "initializer_range"
        case pretrainingTP = "pretraining_tp"
        case useCache = "use_cache"
    }

    // Width of the query / key-value projections.
    public var qDim: Int { numAttentionHeads * headDim }
    public var kvDim: Int { numKeyValueHeads * headDim }

    // MARK: - Decoding

    /// Decodes and validates a `config.json` object (see `ConfigValidation.swift` for the rules).
    /// Throws `LlamaConfigError` naming the key.
    public init(from decoder: Decoder) throws {
        let value = try decoder.singleValueContainer().decode(JSONValue.self)
        guard let object = value.objectValue else {
            throw LlamaConfigError(key: nil, problem: "expected a JSON object, found \(value.kindDescription)")
        }
        self = try LlamaConfig(json: object)
    }

    /// Reads, decodes and validates the `config.json` at `url`; errors name the file and the key.
    public static func load(from url: URL) throws -> LlamaConfig {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw LlamaConfigError(file: url.path, key: nil, problem: "cannot read the file: \(error.localizedDescription)")
        }
        let value: JSONValue
        do {
            value = try JSONValue.parse(data)
        } catch {
            throw LlamaConfigError(file: url.path, key: nil, problem: "not valid JSON (\(error))")
        }
        guard let object = value.objectValue else {
            throw LlamaConfigError(file: url.path, key: nil, problem: "expected a JSON object, found \(value.kindDescription)")
        }
        do {
            return try LlamaConfig(json: object)
        } catch var error as LlamaConfigError {
            error.file = url.path
            throw error
        }
    }

    // MARK: - Encoding

    /// Writes the keys transformers needs to build a `LlamaForCausalLM` with exactly this
    /// architecture, with every feature the model does not implement explicitly off.
    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(["LlamaForCausalLM"], forKey: .architectures)
        try container.encode(modelType, forKey: .modelType)
        try container.encode(hiddenSize, forKey: .hiddenSize)
        try container.encode(intermediateSize, forKey: .intermediateSize)
        try container.encode(numHiddenLayers, forKey: .numHiddenLayers)
        try container.encode(numAttentionHeads, forKey: .numAttentionHeads)
        try container.encode(numKeyValueHeads, forKey: .numKeyValueHeads)
        try container.encode(headDim, forKey: .headDim)
        try container.encode(vocabSize, forKey: .vocabSize)
        try container.encode(rmsNormEps, forKey: .rmsNormEps)
        // transformers 4 reads rope_theta + rope_scaling, transformers 5 reads rope_parameters.
        try container.encode(ropeTheta, forKey: .ropeTheta)
        try container.encodeNil(forKey: .ropeScaling)
        try container.encode(
            ["rope_type": JSONValue.string("default"), "rope_theta": JSONValue.number(Double(ropeTheta))],
            forKey: .ropeParameters)
        try container.encode(tieWordEmbeddings, forKey: .tieWordEmbeddings)
        try container.encode(maxPositionEmbeddings, forKey: .maxPositionEmbeddings)
        try container.encode(bosTokenId, forKey: .bosTokenId)
        if eosTokenIds.count > 1 {
            try container.encode(eosTokenIds, forKey: .eosTokenId)
        } else {
            try container.encode(eosTokenIds.first, forKey: .eosTokenId)
        }
        try container.encode(padTokenId, forKey: .padTokenId)
        try container.encode(hiddenAct, forKey: .hiddenAct)
        if let torchDtype {
            try container.encode(torchDtype, forKey: .torchDtype)
            try container.encode(torchDtype, forKey: .dtype)
        }
        try container.encode(false, forKey: .attentionBias)
        try container.encode(false, forKey: .mlpBias)
        try container.encode(0.0, forKey: .attentionDropout)
        try container.encode(0.02, forKey: .initializerRange)
        try container.encode(1, forKey: .pretrainingTP)
        try container.encode(true, forKey: .useCache)
    }

    /// The `config.json` text (pretty-printed, sorted keys).
    public func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }

    /// Writes `config.json` to `url` atomically (temporary name, then rename).
    public func save(to url: URL) throws {
        try AtomicFile.write(try jsonData(), to: url)
    }
}
