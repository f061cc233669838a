/// The transformers model types this one code path computes, with what differs between them.
///
/// |            | q/k/v bias | q/k norm | default head_dim      | sliding window                  |
/// |------------|------------|----------|-----------------------|---------------------------------|
/// | `llama`    | no         | no       | hidden / heads        | none                            |
/// | `qwen2`    | yes        | no       | hidden / heads        | only with `use_sliding_window`  |
/// | `qwen3`    | no         | yes      | 128                   | only with `use_sliding_window`  |
/// | `mistral`  | no         | no       | hidden / heads        | `sliding_window` (4096 if absent) |
public enum ModelFamily: String, CaseIterable, Sendable {
    case llama, qwen2, qwen3, mistral

    /// The class transformers builds from a saved directory (`architectures` in config.json).
    public var architecture: String {
        switch self {
        case .llama: return "LlamaForCausalLM"
        case .qwen2: return "Qwen2ForCausalLM"
        case .qwen3: return "Qwen3ForCausalLM"
        case .mistral: return "MistralForCausalLM"
        }
    }

    /// `max_position_embeddings` when config.json leaves it out (the config class's default).
    var defaultMaxPositions: Int {
        switch self {
        case .llama: return 2048
        case .qwen2, .qwen3: return 32768
        case .mistral: return 4096 * 32
        }
    }

    /// `head_dim` when config.json leaves it out: Qwen3Config's default is a fixed 128.
    func defaultHeadDim(hiddenSize: Int, heads: Int) -> Int? {
        self == .qwen3 ? 128 : nil
    }

    /// The names of the supported types, for error messages.
    static var supportedList: String { allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", ") }
}

// MARK: - Limits on the rows a config can run

/// The longest row a config computes the way transformers does, when it has such a bound.
public struct PositionLimit: Equatable, Sendable, CustomStringConvertible {
    public var tokens: Int
    /// The config key that sets the bound.
    public var key: String
    public var reason: String

    public var description: String { "rows of at most \(tokens) tokens (\(key): \(reason))" }
}

extension LlamaConfig {
    /// Rows longer than this are refused: past a sliding window the attention would have to
    /// drop old keys, and past `max_position_embeddings` dynamic RoPE changes its frequencies
    /// with the length. Neither is implemented, so such rows would train on different outputs.
    public var positionLimit: PositionLimit? {
        var limits: [PositionLimit] = []
        if let window = slidingWindow {
            limits.append(PositionLimit(
                tokens: window, key: "sliding_window",
                reason: "attention limited to the last \(window) positions is not implemented; a longer row would attend differently from transformers"))
        }
        if case .dynamic = rope {
            limits.append(PositionLimit(
                tokens: maxPositionEmbeddings, key: "rope_scaling",
                reason: "dynamic RoPE rescales its frequencies for rows longer than max_position_embeddings \(maxPositionEmbeddings)"))
        }
        return limits.min { $0.tokens < $1.tokens }
    }

    /// Throws, naming the limit's key, if a row of `length` tokens exceeds `positionLimit`.
    public func checkRowLength(_ length: Int) throws {
        guard let limit = positionLimit, length > limit.tokens else { return }
        throw LlamaConfigError(
            key: limit.key,
            problem: "a row of \(length) tokens is longer than \(limit.tokens): \(limit.reason). Shorten the rows (max length) to \(limit.tokens)")
    }
}
