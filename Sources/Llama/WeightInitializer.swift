import Foundation

/// Random initial weights the way transformers initialises a fresh `LlamaForCausalLM`:
/// every linear and embedding weight ~ Normal(0, `standardDeviation`) (transformers'
/// `initializer_range`, 0.02), every RMSNorm weight = 1, every bias = 0, and the embedding row of
/// `pad_token_id` zeroed (transformers passes it as the embedding's `padding_idx`).
///
/// Deterministic from `seed`: each tensor draws from its own stream, seeded by the seed and
/// the tensor's name, so a tensor's values do not depend on the layout around it (and the
/// tensors can be filled in parallel).
public struct WeightInitializer: Sendable {
    public var seed: UInt64
    public var standardDeviation: Float
    public var zeroPaddingRow: Bool

    public init(seed: UInt64, standardDeviation: Float = 0.02, zeroPaddingRow: Bool = true) {
        self.seed = seed
        self.standardDeviation = standardDeviation
        self.zeroPaddingRow = zeroPaddingRow
    }

    /// Fresh weights for `config`, flat in `ParameterLayout` order.
    public func weights(for config: LlamaConfig) -> [Float] {
        let layout = ParameterLayout(config: config)
        var flat = [Float](repeating: 0, count: layout.totalCount)
        flat.withUnsafeMutableBufferPointer { fill($0, layout: layout, padTokenId: config.padTokenId) }
        return flat
    }

    /// Fills `flat` (`layout.totalCount` values) in place.
    public func fill(_ flat: UnsafeMutableBufferPointer<Float>, layout: ParameterLayout, padTokenId: Int?) {
        precondition(flat.count == layout.totalCount, "buffer of \(flat.count) for a layout of \(layout.totalCount)")
        let entries = layout.entries
        let base = flat.baseAddress!
        DispatchQueue.concurrentPerform(iterations: entries.count) { position in
            let entry = entries[position]
            let values = UnsafeMutableBufferPointer(start: base + entry.offset, count: entry.count)
            if entry.isNorm {
                values.update(repeating: 1)
                return
            }
            if entry.isBias {
                values.update(repeating: 0)  // nn.Linear biases as transformers' _init_weights leaves them
                return
            }
            var generator = NormalGenerator(seed: seed ^ Self.nameHash(entry.name))
            generator.fill(values, standardDeviation: standardDeviation)
            if zeroPaddingRow, entry.name == ModelDirectory.embeddingName, let pad = padTokenId,
               entry.shape.count == 2, (0..<entry.shape[0]).contains(pad) {
                let width = entry.shape[1]
                UnsafeMutableBufferPointer(rebasing: values[(pad * width)..<((pad + 1) * width)]).update(repeating: 0)
            }
        }
    }

    /// FNV-1a of the UTF-8 name: a stable per-tensor stream id.
    static func nameHash(_ name: String) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in name.utf8 { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        return hash
    }
}

/// Standard normal draws: xoshiro256** uniforms through the Box-Muller transform (in Double).
struct NormalGenerator {
    private var state: (UInt64, UInt64, UInt64, UInt64)

    init(seed: UInt64) {
        var splitMix = seed
        func next() -> UInt64 {
            splitMix &+= 0x9E37_79B9_7F4A_7C15
            var z = splitMix
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        state = (next(), next(), next(), next())
    }

    mutating func nextUInt64() -> UInt64 {
        let result = ((state.1 &* 5) << 7 | (state.1 &* 5) >> 57) &* 9
        let t = state.1 << 17
        state.2 ^= state.0
        state.3 ^= state.1
        state.1 ^= state.2
        state.0 ^= state.3
        state.2 ^= t
        state.3 = state.3 << 45 | state.3 >> 19
        return result
    }

    /// Uniform in (0, 1].
    mutating func nextUnitInterval() -> Double { Double((nextUInt64() >> 11) + 1) * 0x1p-53 }

    /// Fills `values` with Normal(0, standardDeviation) draws, two per Box-Muller step.
    mutating func fill(_ values: UnsafeMutableBufferPointer<Float>, standardDeviation: Float) {
        let scale = Double(standardDeviation)
        var i = 0
        while i < values.count {
            let radius = (-2 * log(nextUnitInterval())).squareRoot() * scale
            let angle = 2 * Double.pi * nextUnitInterval()
            values[i] = Float(radius * cos(angle))
            if i + 1 < values.count { values[i + 1] = Float(radius * sin(angle)) }
            i += 2
        }
    }
}
