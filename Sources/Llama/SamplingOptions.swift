/// How `LlamaModel.generate` picks each next token.
///
/// `temperature == 0` is greedy (argmax). Otherwise logits are divided by the temperature,
/// softmaxed, cut to the smallest set of most likely tokens whose probability reaches `topP`
/// (nucleus sampling), and sampled with a SplitMix64 generator seeded by `seed`, so the same
/// options give the same tokens.
public struct SamplingOptions: Sendable, Equatable {
    public var temperature: Float
    public var topP: Float
    public var seed: UInt64

    public init(temperature: Float = 0, topP: Float = 1, seed: UInt64 = 0) {
        self.temperature = temperature
        self.topP = topP
        self.seed = seed
    }

    public static let greedy = SamplingOptions()
}

/// SplitMix64: small, fast, and the same on every platform (generation must be reproducible).
struct SplitMix64 {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [0, 1) with 53 random bits.
    mutating func nextUnit() -> Double { Double(next() >> 11) / Double(1 << 53) }
}
