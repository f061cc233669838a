/// Where every adapter matrix lives in the one flat adapter vector (the trainable parameters
/// of a LoRA run: its gradients, master weights and Adam moments use this layout).
///
/// Order: layer 0..L-1; in each, the stacks q|k|v, o, gate|up, down (projections that share
/// their input); in each stack the targeted modules' A matrices, then their B matrices:
///
///     base_model.model.model.layers.{i}.<path>.lora_A.weight    [r, in]    (adjacent: one [c r, in] stack)
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

    /// Projections that read the same input, so their A matrices stack into one product.
    public static let stacks: [[LoRAModule]] = [[.qProj, .kProj, .vProj], [.oProj], [.gateProj, .upProj], [.downProj]]

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
            for stack in Self.stacks {
                let targeted = stack.filter { lora.targets.contains($0) }
                var aOffsets: [LoRAModule: Int] = [:]
                for module in targeted {
                    let a = Entry(layer: layer, module: module, isB: false, shape: [lora.rank, module.features(c).in], offset: offset)
                    entries.append(a)
                    aOffsets[module] = a.offset
                    offset = a.range.upperBound
                }
                for module in targeted {
                    let b = Entry(layer: layer, module: module, isB: true, shape: [module.features(c).out, lora.rank], offset: offset)
                    entries.append(b)
                    layerPairs[module] = Pair(a: aOffsets[module]!, b: b.offset)
                    offset = b.range.upperBound
                }
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
