import Foundation
import Kernels

/// The rotary-embedding variant of a config (`rope_scaling` in transformers 4 configs,
/// `rope_parameters` in transformers 5), reduced to what the model computes: the inverse
/// frequencies `[headDim / 2]` and the factor transformers multiplies cos and sin by.
///
/// Formulas follow transformers' `modeling_rope_utils.py` step by step in float32, as torch
/// runs them (Double only where transformers uses Python floats: yarn's correction range).
public enum RopeScaling: Equatable, Sendable {
    /// Plain RoPE (`rope_type: "default"` or no scaling at all).
    case none
    /// Position interpolation: every inverse frequency divided by `factor`.
    case linear(factor: Double)
    /// Dynamic NTK: the base grows once a sequence passes `max_position_embeddings`. Up to that
    /// length it is plain RoPE, so longer rows are refused (see `LlamaConfig.positionLimit`).
    case dynamic(factor: Double)
    /// Llama 3.x: low frequencies divided by `factor`, a smooth ramp between the wavelengths
    /// `original / lowFreqFactor` and `original / highFreqFactor`.
    case llama3(factor: Double, lowFreqFactor: Double, highFreqFactor: Double, originalMaxPositions: Int)
    /// YaRN: interpolation blended with extrapolation over a correction range of dimensions,
    /// cos and sin scaled by the attention factor.
    case yarn(Yarn)

    public struct Yarn: Equatable, Sendable {
        public var factor: Double
        public var originalMaxPositions: Int
        /// Given explicitly, or nil: derived from `factor`, `mscale`, `mscaleAllDim`.
        public var attentionFactor: Double?
        public var betaFast: Double = 32
        public var betaSlow: Double = 1
        public var mscale: Double?
        public var mscaleAllDim: Double?
        public var truncate: Bool = true

        public init(factor: Double, originalMaxPositions: Int, attentionFactor: Double? = nil) {
            self.factor = factor
            self.originalMaxPositions = originalMaxPositions
            self.attentionFactor = attentionFactor
        }
    }

    /// transformers' `rope_type` string.
    public var typeName: String {
        switch self {
        case .none: return "default"
        case .linear: return "linear"
        case .dynamic: return "dynamic"
        case .llama3: return "llama3"
        case .yarn: return "yarn"
        }
    }

    // MARK: - Frequencies

    /// `1 / theta^(2i/d)` for i in 0..<d/2, as torch computes it in float32.
    static func defaultInverseFrequencies(theta: Float, headDim: Int) -> [Float] {
        (0..<headDim / 2).map { i in 1 / powf(theta, Float(2 * i) / Float(headDim)) }
    }

    /// The inverse frequencies `[headDim / 2]` of this variant.
    public func inverseFrequencies(theta: Float, headDim: Int) -> [Float] {
        let base = Self.defaultInverseFrequencies(theta: theta, headDim: headDim)
        switch self {
        case .none, .dynamic:
            // Dynamic NTK equals plain RoPE up to max_position_embeddings, the only lengths allowed.
            return base
        case .linear(let factor):
            return base.map { $0 / Float(factor) }
        case let .llama3(factor, lowFreqFactor, highFreqFactor, original):
            return Self.llama3(base, factor: Float(factor), low: Float(lowFreqFactor), high: Float(highFreqFactor),
                               original: Float(original))
        case .yarn(let yarn):
            return Self.yarn(yarn, theta: theta, headDim: headDim)
        }
    }

    /// What transformers multiplies cos and sin by (`attention_scaling`): 1 except for yarn.
    public var attentionScaling: Float {
        guard case .yarn(let y) = self else { return 1 }
        if let given = y.attentionFactor { return Float(given) }
        func mscale(_ scale: Double, _ m: Double = 1) -> Double { scale <= 1 ? 1 : 0.1 * m * log(scale) + 1 }
        if let m = y.mscale, let all = y.mscaleAllDim, m != 0, all != 0 {
            return Float(mscale(y.factor, m) / mscale(y.factor, all))
        }
        return Float(mscale(y.factor))
    }

    /// `_compute_llama3_parameters`: wavelengths above `original / low` are divided by the factor,
    /// below `original / high` kept, in between a linear blend in `original / wavelength`.
    static func llama3(_ inverse: [Float], factor: Float, low: Float, high: Float, original: Float) -> [Float] {
        let lowWavelength = original / low, highWavelength = original / high
        return inverse.map { f in
            let wavelength = (1 / f) * Float(2 * Double.pi)
            let scaled = wavelength > lowWavelength ? f / factor : f
            guard !(wavelength < highWavelength) && !(wavelength > lowWavelength) else { return scaled }
            let smooth = (original / wavelength - low) / (high - low)
            return (1 - smooth) * scaled / factor + smooth * scaled
        }
    }

    /// `_compute_yarn_parameters`: the ramp over the correction range `[low, high]` of dimension
    /// pairs picks extrapolated (unscaled) frequencies below `low`, interpolated ones above `high`.
    static func yarn(_ y: Yarn, theta: Float, headDim: Int) -> [Float] {
        let dim = headDim
        func correctionDimension(_ rotations: Double) -> Double {
            Double(dim) * log(Double(y.originalMaxPositions) / (rotations * 2 * Double.pi)) / (2 * log(Double(theta)))
        }
        var low = correctionDimension(y.betaFast), high = correctionDimension(y.betaSlow)
        if y.truncate { low = low.rounded(.down); high = high.rounded(.up) }
        low = max(low, 0)
        high = min(high, Double(dim - 1))
        if low == high { high += 0.001 }  // transformers' guard against a zero-width ramp
        let factor = Float(y.factor)
        return (0..<dim / 2).map { i in
            let frequency = powf(theta, Float(2 * i) / Float(dim))
            let extrapolation = 1 / frequency
            let interpolation = 1 / (factor * frequency)
            let ramp = min(max((Float(i) - Float(low)) / Float(high - low), 0), 1)
            let extrapolationFactor = 1 - ramp
            return interpolation * (1 - extrapolationFactor) + extrapolation * extrapolationFactor
        }
    }
}

extension LlamaConfig {
    /// The rotary tables of this config's RoPE variant for positions `0..<maxPositions`.
    func rotary(maxPositions: Int) -> Rotary {
        Rotary(headDim: headDim, inverseFrequencies: rope.inverseFrequencies(theta: ropeTheta, headDim: headDim),
               attentionScaling: rope.attentionScaling, maxPositions: maxPositions)
    }
}
