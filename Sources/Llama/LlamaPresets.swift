/// The built-in model shapes of `dpo init` and `dpo bench` (the same as the PyTorch anchors):
/// all tied, rope_theta 1e6, rms_norm_eps 1e-5, max_position_embeddings 1024.
public enum LlamaPreset: String, CaseIterable, Sendable {
    case tiny, small, minimind

    public var config: LlamaConfig {
        switch self {
        case .tiny:
            return LlamaConfig(hiddenSize: 64, intermediateSize: 176, numHiddenLayers: 2, numAttentionHeads: 4,
                               numKeyValueHeads: 2, vocabSize: 259, bosTokenId: nil, eosTokenId: 258, padTokenId: 256)
        case .small:
            return LlamaConfig(hiddenSize: 128, intermediateSize: 352, numHiddenLayers: 4, numAttentionHeads: 4,
                               numKeyValueHeads: 2, vocabSize: 512, bosTokenId: nil, eosTokenId: 258, padTokenId: 256)
        case .minimind:
            // MiniMind2-small-like: 512 wide, 8 layers, GQA 8/2, vocab 6400.
            return LlamaConfig(hiddenSize: 512, intermediateSize: 1408, numHiddenLayers: 8, numAttentionHeads: 8,
                               numKeyValueHeads: 2, vocabSize: 6400, bosTokenId: nil, eosTokenId: 258, padTokenId: 256)
        }
    }
}
