import Foundation

/// The architecture of a LLaMA-family causal LM, decoded from a Hugging Face `config.json`.
///
/// One model, several families (`ModelFamily`): `llama`, `qwen2` (q/k/v biases), `qwen3`
/// (per-head q/k RMSNorm) and `mistral` (sliding window), each with the RoPE variants of
/// `RopeScaling`. Only what this model computes is accepted: a config asking for something
/// else (another `model_type`, an unknown rope type, MoE, biases the family does not have,
/// ...) is refused (see `ConfigValidation.swift`, `ConfigFamilies.swift`) with a message
/// naming the key, never silently run as a different model. Keys missing from a `config.json`
/// take the defaults of the family's transformers config class, except the five sizes
/// (`hidden_size`, `intermediate_size`, `num_hidden_layers`, `num_attention_heads`,
/// `vocab_size`), which are required.
///
/// Encoding writes a `config.json` that transformers (4.x and 5.x) loads as the family's own
/// class (`LlamaForCausalLM`, `Qwen2ForCausalLM`, ...), keeping the keys this model does not
/// interpret (`otherKeys`) as they were read.
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
    /// The rotary-embedding variant (`rope_scaling` / `rope_parameters`).
    public var rope: RopeScaling = .none
    /// The attention window of the layers that slide (Mistral, or Qwen with
    /// `use_sliding_window`); nil when every layer attends to the whole prefix. Rows longer than
    /// the window are refused (`positionLimit`), so attention itself stays full causal.
    public var slidingWindow: Int?
    /// Keys of the loaded `config.json` this model does not interpret (`transformers_version`,
    /// `max_window_layers`, `layer_types`, ...), written back unchanged so the saved directory
    /// keeps them.
    var otherKeys: [String: JSONValue] {
        get { passthrough.values }
        set { passthrough.values = newValue }
    }
    var passthrough = PassthroughKeys()

    /// The family (a valid config's `model_type`; `.llama` for an unknown one, which `validate` refuses).
    public var family: ModelFamily { ModelFamily(rawValue: modelType) ?? .llama }
    /// q_proj, k_proj and v_proj carry biases (Qwen2).
    public var hasQKVBias: Bool { family == .qwen2 }
    /// Per-head RMSNorm of queries and keys before RoPE (`q_norm`, `k_norm`: Qwen3).
    public var hasQueryKeyNorm: Bool { family == .qwen3 }

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

    /// Writes the keys transformers needs to build the family's `...ForCausalLM` with exactly this
    /// architecture, every feature the model does not implement explicitly off, and `otherKeys`.
    public func encode(to encoder: Encoder) throws {
        var object = otherKeys
        for (key, value) in try encodedKeys() { object[key] = value }
        var container = encoder.singleValueContainer()
        try container.encode(JSONValue.object(object))
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

/// The uninterpreted keys of a loaded config.json. They do not change what the model computes,
/// so two configs that differ only here are equal (a config equals its own re-read encoding).
struct PassthroughKeys: Equatable, Sendable {
    var values: [String: JSONValue] = [:]
    static func == (lhs: PassthroughKeys, rhs: PassthroughKeys) -> Bool { true }
}
