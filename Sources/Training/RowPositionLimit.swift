import Llama

/// The longest row train, logps, eval and generate run, and the config key that sets it.
public struct RowPositionLimit: Equatable, Sendable {
    public var tokens: Int
    public var key: String
    public var reason: String
}

extension LlamaConfig {
    /// The config's own bound (a sliding window, dynamic RoPE: `positionLimit`) or else
    /// `max_position_embeddings`. Plain RoPE would compute positions past it as transformers
    /// does, but the model never saw them in training, so a longer row would train or score on
    /// untrained positions.
    public var rowPositionLimit: RowPositionLimit {
        if let own = positionLimit, own.tokens <= maxPositionEmbeddings {
            return RowPositionLimit(tokens: own.tokens, key: own.key, reason: own.reason)
        }
        return RowPositionLimit(tokens: maxPositionEmbeddings, key: "max_position_embeddings",
                                reason: "the model was never trained on positions past \(maxPositionEmbeddings)")
    }
}
