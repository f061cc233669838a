/// Where every parameter lives in the one flat buffer.
///
/// Weights, gradients, fp32 master weights and optimizer moments all use this layout,
/// so one all-reduce and one optimizer loop cover the whole model (as in llm.c).
/// Order (Hugging Face names, row-major shapes `[out, in]` as PyTorch stores them):
///
///     model.embed_tokens.weight                   [V, H]          group 0
///     model.layers.{i}.input_layernorm.weight     [H]             group 1 + i
///     model.layers.{i}.self_attn.q_proj.weight    [nH*hd, H]
///     model.layers.{i}.self_attn.k_proj.weight    [nKV*hd, H]
///     model.layers.{i}.self_attn.v_proj.weight    [nKV*hd, H]
///     model.layers.{i}.self_attn.q_proj.bias      [nH*hd]         qwen2 only
///     model.layers.{i}.self_attn.k_proj.bias      [nKV*hd]        qwen2 only
///     model.layers.{i}.self_attn.v_proj.bias      [nKV*hd]        qwen2 only
///     model.layers.{i}.self_attn.q_norm.weight    [hd]            qwen3 only
///     model.layers.{i}.self_attn.k_norm.weight    [hd]            qwen3 only
///     model.layers.{i}.self_attn.o_proj.weight    [H, nH*hd]
///     model.layers.{i}.post_attention_layernorm.weight [H]
///     model.layers.{i}.mlp.gate_proj.weight       [F, H]
///     model.layers.{i}.mlp.up_proj.weight         [F, H]
///     model.layers.{i}.mlp.down_proj.weight       [H, F]
///     model.norm.weight                           [H]             group L + 1
///     lm_head.weight                              [V, H]          group L + 1 (untied only)
///
/// A *group* is the unit whose gradients become final together during backward
/// (backward finishes group L+1 first, then layers L-1 ... 0, then the embedding),
/// which is what the gradient reducer buckets on. Each group is contiguous.
public struct ParameterLayout: Sendable {
    public struct Entry: Sendable, Equatable {
        public let name: String
        public let shape: [Int]
        public let offset: Int
        public var count: Int { shape.reduce(1, *) }
        /// Parameter group (see the type's documentation).
        public let group: Int
        /// Norm weights get no weight decay (and start at 1).
        public let isNorm: Bool
        /// Biases start at 0 (and, like norms, should get no weight decay).
        public var isBias: Bool { name.hasSuffix(".bias") }
        public var range: Range<Int> { offset..<(offset + count) }
    }

    public let entries: [Entry]
    public let totalCount: Int
    /// `groupRanges[g]` is the contiguous range of group `g` in the flat buffer.
    public let groupRanges: [Range<Int>]
    private let index: [String: Int]

    public init(config c: LlamaConfig) {
        var entries: [Entry] = []
        var offset = 0
        func add(_ name: String, _ shape: [Int], group: Int, isNorm: Bool = false) {
            let e = Entry(name: name, shape: shape, offset: offset, group: group, isNorm: isNorm)
            entries.append(e)
            offset += e.count
        }
        let h = c.hiddenSize, f = c.intermediateSize
        add("model.embed_tokens.weight", [c.vocabSize, h], group: 0)
        for i in 0..<c.numHiddenLayers {
            let p = "model.layers.\(i)."
            let g = 1 + i
            add(p + "input_layernorm.weight", [h], group: g, isNorm: true)
            add(p + "self_attn.q_proj.weight", [c.qDim, h], group: g)
            add(p + "self_attn.k_proj.weight", [c.kvDim, h], group: g)
            add(p + "self_attn.v_proj.weight", [c.kvDim, h], group: g)
            if c.hasQKVBias {
                // Adjacent like the weights: one [Q + 2K] bias for the stacked projection.
                add(p + "self_attn.q_proj.bias", [c.qDim], group: g)
                add(p + "self_attn.k_proj.bias", [c.kvDim], group: g)
                add(p + "self_attn.v_proj.bias", [c.kvDim], group: g)
            }
            if c.hasQueryKeyNorm {
                add(p + "self_attn.q_norm.weight", [c.headDim], group: g, isNorm: true)
                add(p + "self_attn.k_norm.weight", [c.headDim], group: g, isNorm: true)
            }
            add(p + "self_attn.o_proj.weight", [h, c.qDim], group: g)
            add(p + "post_attention_layernorm.weight", [h], group: g, isNorm: true)
            add(p + "mlp.gate_proj.weight", [f, h], group: g)
            add(p + "mlp.up_proj.weight", [f, h], group: g)
            add(p + "mlp.down_proj.weight", [h, f], group: g)
        }
        let head = c.numHiddenLayers + 1
        add("model.norm.weight", [h], group: head, isNorm: true)
        if !c.tieWordEmbeddings { add("lm_head.weight", [c.vocabSize, h], group: head) }

        self.entries = entries
        self.totalCount = offset
        var ranges: [Range<Int>] = []
        for g in 0...head {
            let members = entries.filter { $0.group == g }
            ranges.append(members.first!.offset..<(members.last!.offset + members.last!.count))
        }
        self.groupRanges = ranges
        var index: [String: Int] = [:]
        for (i, e) in entries.enumerated() { index[e.name] = i }
        self.index = index
    }

    public var groupCount: Int { groupRanges.count }

    public subscript(name: String) -> Entry? { index[name].map { entries[$0] } }

    /// Entry by name; traps on a name the layout does not have (a programming error).
    public func entry(_ name: String) -> Entry {
        guard let e = self[name] else { preconditionFailure("no parameter named \(name)") }
        return e
    }
}
