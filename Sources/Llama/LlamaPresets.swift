/// The built-in model shapes of `dpo init` and `dpo bench`.
///
/// `tiny`, `small`, `minimind` are the PyTorch anchors' shapes: llama, tied, rope_theta 1e6,
/// rms_norm_eps 1e-5, max_position_embeddings 1024. `smollm2-135m` and `qwen2.5-0.5b` have the
/// shapes (and family options: Qwen2's q/k/v biases) of those real checkpoints, for speed work
/// without downloads. Every preset keeps the byte tokenizer's special ids (eos 258, pad 256),
/// which `dpo init` writes beside it.
public enum LlamaPreset: String, CaseIterable, Sendable {
    case tiny, small, minimind
    case smollm2135m = "smollm2-135m"
    case qwen25Half = "qwen2.5-0.5b"

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
        case .smollm2135m:
            // HuggingFaceTB/SmolLM2-135M: llama, 576 wide, 30 layers, GQA 9/3 (head_dim 64), vocab 49152, tied.
            return LlamaConfig(hiddenSize: 576, intermediateSize: 1536, numHiddenLayers: 30, numAttentionHeads: 9,
                               numKeyValueHeads: 3, vocabSize: 49152, rmsNormEps: 1e-5, ropeTheta: 100_000,
                               tieWordEmbeddings: true, maxPositionEmbeddings: 8192, bosTokenId: nil, eosTokenId: 258, padTokenId: 256)
        case .qwen25Half:
            // Qwen/Qwen2.5-0.5B: qwen2 (q/k/v biases), 896 wide, 24 layers, GQA 14/2 (head_dim 64), vocab 151936, tied.
            var config = LlamaConfig(hiddenSize: 896, intermediateSize: 4864, numHiddenLayers: 24, numAttentionHeads: 14,
                                     numKeyValueHeads: 2, vocabSize: 151_936, rmsNormEps: 1e-6, ropeTheta: 1_000_000,
                                     tieWordEmbeddings: true, maxPositionEmbeddings: 32768, bosTokenId: nil, eosTokenId: 258, padTokenId: 256)
            config.modelType = ModelFamily.qwen2.rawValue
            return config
        }
    }
}
