import Kernels

/// The LoRA adapters attached to a `LlamaModel`: float32 A and B matrices in `LoRALayout`
/// order, whatever the base precision, plus the scratch their kernels need.
///
/// `enabled` is the reference switch: with it off the model computes the frozen base model
/// exactly (the adapter path is skipped, not multiplied by zero).
public final class LoRAAdapters {
    public let config: LoRAConfig
    public let layout: LoRALayout
    /// Adapter weights [layout.totalCount], float32.
    let weights: FloatBuffer
    /// Whether forward adds the adapters (false: the base model, the DPO reference).
    public internal(set) var enabled = true

    /// `u = x A^T` and its gradient `[tokens, 3r]` (a q|k|v stack), grown to the largest batch seen.
    private(set) var down: FloatBuffer
    private(set) var dDown: FloatBuffer
    /// Sink for gradients of frozen vectors the shared kernels always write (norm weights,
    /// Qwen3's q|k norms): `[max(H, 2 * headDim)]`, never read.
    let frozenGradientSink: FloatBuffer
    /// The arena of base-model (adapters off) forwards, kept apart from the policy's saved one.
    var referenceArena: ActivationArena?

    public init(model c: LlamaConfig, config: LoRAConfig) throws {
        try config.validate(for: c)
        self.config = config
        self.layout = LoRALayout(model: c, lora: config)
        weights = FloatBuffer(count: layout.totalCount)
        down = FloatBuffer(count: 0)
        dDown = FloatBuffer(count: 0)
        frozenGradientSink = FloatBuffer(count: max(c.hiddenSize, 2 * c.headDim))
    }

    /// Replaces the adapter weights (layout order).
    public func load(_ flat: UnsafeBufferPointer<Float>) {
        precondition(flat.count == layout.totalCount, "LoRA load: \(flat.count) values, the adapter layout has \(layout.totalCount)")
        if let base = flat.baseAddress { weights.pointer.update(from: base, count: flat.count) }
    }

    /// The adapter weights (layout order).
    public var values: [Float] { Array(UnsafeBufferPointer(start: weights.pointer, count: layout.totalCount)) }

    /// Scratch for `tokens` rows of `u` and `du` of a stack of up to 3 projections.
    func scratch(tokens: Int) -> (u: UnsafeMutablePointer<Float>, du: UnsafeMutablePointer<Float>) {
        let needed = tokens * config.rank * 3
        if down.count < needed {
            down = FloatBuffer(count: needed)
            dDown = FloatBuffer(count: needed)
        }
        return (down.pointer, dDown.pointer)
    }

    // MARK: - Initialisation

    /// PEFT's default initialisation (`init_lora_weights=True`): each lora_A Kaiming-uniform with
    /// a = sqrt(5), i.e. U(-1/sqrt(in), 1/sqrt(in)), each lora_B zero, so the adapted model
    /// starts as the base model. One xoshiro stream per tensor (seed ^ hash of its PEFT name).
    public static func initialWeights(layout: LoRALayout, seed: UInt64) -> [Float] {
        var flat = [Float](repeating: 0, count: layout.totalCount)
        for entry in layout.entries where !entry.isB {
            var random = NormalGenerator(seed: seed ^ WeightInitializer.nameHash(entry.name))
            let bound = 1 / Double(entry.shape[1]).squareRoot()
            for i in entry.range { flat[i] = Float((2 * random.nextUnitInterval() - 1) * bound) }
        }
        return flat
    }
}
