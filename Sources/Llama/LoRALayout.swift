/// Where every adapter matrix lives in the one flat adapter vector (the trainable parameters
/// of a LoRA run: its gradients, master weights and Adam moments use this layout).
///
/// Order: layer 0..L-1, in each the targeted modules in `LoRAModule` order, each as
///
///     base_model.model.model.layers.{i}.<path>.lora_A.weight    [r, in]
///     base_model.model.model.layers.{i}.<path>.lora_B.weight    [out, r]
///
/// (PEFT's saved names). Group `i` is layer `i`'s adapters: backward finishes them together.
public struct LoRALayout: Sendable {
    public struct Entry: Sendable, Equatable {
        public let layer: Int
        public let module: LoRAModule
        /// `lora_A` (false) or `lora_B` (true).
        public let isB: Bool
        public let shape: [Int]
        public let offset: Int
        public var count: Int { shape[0] * shape[1] }
        public var range: Range<Int> { offset..<(offset + count) }
        /// PEFT's tensor name in `adapter_model.safetensors`.
        public var name: String {
            "base_model.model.model.layers.\(layer).\(module.path).lora_\(isB ? "B" : "A").weight"
        }
        /// The base weight this adapter belongs to (`model.layers.{i}.<path>.weight`).
        public var baseName: String { "model.layers.\(layer).\(module.path).weight" }
    }

    /// Offsets of one module's A and B.
    public struct Pair: Sendable { public let a: Int, b: Int }

    public let entries: [Entry]
    public let totalCount: Int
    /// `groupRanges[i]`: layer `i`'s adapters.
    public let groupRanges: [Range<Int>]
    /// `pairs[layer][module]`; nil for untargeted modules.
    let pairs: [[LoRAModule: Pair]]

    public init(model c: LlamaConfig, lora: LoRAConfig) {
        var entries: [Entry] = [], pairs: [[LoRAModule: Pair]] = [], ranges: [Range<Int>] = []
        var offset = 0
        for layer in 0..<c.numHiddenLayers {
            let start = offset
            var layerPairs: [LoRAModule: Pair] = [:]
            for module in lora.targets {
                let f = module.features(c)
                let a = Entry(layer: layer, module: module, isB: false, shape: [lora.rank, f.in], offset: offset)
                let b = Entry(layer: layer, module: module, isB: true, shape: [f.out, lora.rank], offset: a.range.upperBound)
                entries += [a, b]
                layerPairs[module] = Pair(a: a.offset, b: b.offset)
                offset = b.range.upperBound
            }
            pairs.append(layerPairs)
            ranges.append(start..<offset)
        }
        self.entries = entries
        self.totalCount = offset
        self.groupRanges = ranges
        self.pairs = pairs
    }

    public func pair(layer: Int, module: LoRAModule) -> Pair? { pairs[layer][module] }
}
