import Foundation
import Llama

/// Which update rule `--optimizer` selects.
public enum OptimizerKind: String, Codable, CaseIterable, Sendable {
    /// Adam with decoupled weight decay (Loshchilov & Hutter), as `torch.optim.AdamW`.
    case adamw
    /// Plain stochastic gradient descent, as `torch.optim.SGD` without momentum
    /// (weight decay added to the gradient); the rule for exact gradient checks.
    case sgd
}

/// Hyper-parameters of the optimizer (the learning rate comes from the schedule each step).
public struct OptimizerOptions: Codable, Equatable, Sendable {
    public var kind: OptimizerKind = .adamw
    /// `--weight-decay`, default 0 (TRL's default). Never applied to norm weights.
    public var weightDecay: Double = 0
    /// `--adam-beta1`, `--adam-beta2`, `--adam-eps`: PyTorch's defaults.
    public var beta1: Double = 0.9
    public var beta2: Double = 0.999
    public var epsilon: Double = 1e-8

    public init(kind: OptimizerKind = .adamw, weightDecay: Double = 0, beta1: Double = 0.9, beta2: Double = 0.999,
                epsilon: Double = 1e-8) {
        self.kind = kind
        self.weightDecay = weightDecay
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
    }

    public func validate() throws {
        guard weightDecay.isFinite, weightDecay >= 0 else {
            throw TrainingError.invalidOption("--weight-decay must be >= 0, got \(weightDecay)")
        }
        guard beta1 >= 0, beta1 < 1 else { throw TrainingError.invalidOption("--adam-beta1 must be in [0, 1), got \(beta1)") }
        guard beta2 >= 0, beta2 < 1 else { throw TrainingError.invalidOption("--adam-beta2 must be in [0, 1), got \(beta2)") }
        guard epsilon.isFinite, epsilon > 0 else { throw TrainingError.invalidOption("--adam-eps must be > 0, got \(epsilon)") }
    }
}

/// An optimizer over the flat fp32 master weights (one loop over the `ParameterLayout` buffer).
///
/// State (step count, first and second moments) uses the same layout as the weights, so it
/// saves and restores as flat arrays. `step` is only called with finite gradients (the
/// trainer skips non-finite steps before reaching it), so a skipped step leaves every
/// state array untouched.
public final class FlatOptimizer {
    public let options: OptimizerOptions
    /// 1 where weight decay applies, 0 on norm weights and biases (as transformers' Trainer); [parameters].
    private let decayMask: [Float]
    /// Updates taken so far (PyTorch's per-parameter `step`).
    public private(set) var stepCount: Int = 0
    /// Adam moments, layout order; empty for SGD. [parameters]
    public private(set) var firstMoment: [Float]
    public private(set) var secondMoment: [Float]

    /// Elements of the flat trainable vector this optimizer updates: all of them, or (ZeRO-1,
    /// `--zero 1`) this rank's shard; `step` then takes weights and gradients of the shard only.
    public let range: Range<Int>

    public convenience init(options: OptimizerOptions, layout: ParameterLayout) {
        self.init(options: options, layout: layout, range: 0..<layout.totalCount)
    }

    /// An optimizer of elements `range` of the layout only (state [range.count]).
    public convenience init(options: OptimizerOptions, layout: ParameterLayout, range: Range<Int>) {
        precondition(range.lowerBound >= 0 && range.upperBound <= layout.totalCount, "optimizer range \(range) outside the layout")
        var mask = [Float](repeating: 1, count: range.count)
        for entry in layout.entries where entry.isNorm || entry.isBias {
            for i in entry.range.clamped(to: range) { mask[i - range.lowerBound] = 0 }
        }
        self.init(options: options, decayMask: mask, range: range)
    }

    /// An optimizer over `decayMask.count` parameters (elements `range` of the trainable vector,
    /// default all of them), weight decay where the mask is 1 (LoRA adapters: all 1, as
    /// transformers' Trainer decays every non-bias, non-norm weight).
    public init(options: OptimizerOptions, decayMask: [Float], range: Range<Int>? = nil) {
        let range = range ?? 0..<decayMask.count
        precondition(range.count == decayMask.count, "optimizer range \(range) does not match its \(decayMask.count) decay flags")
        self.options = options
        self.range = range
        self.decayMask = decayMask
        let momentCount = options.kind == .adamw ? decayMask.count : 0
        firstMoment = [Float](repeating: 0, count: momentCount)
        secondMoment = [Float](repeating: 0, count: momentCount)
    }

    public var parameterCount: Int { decayMask.count }

    // MARK: - Update

    /// One update of `weights` (fp32 master, layout order) from finite `gradients`.
    public func step(weights: UnsafeMutableBufferPointer<Float>, gradients: UnsafeBufferPointer<Float>, learningRate: Double) {
        precondition(weights.count == decayMask.count && gradients.count == decayMask.count, "optimizer buffer size")
        stepCount += 1
        switch options.kind {
        case .adamw: adamWStep(weights, gradients, learningRate)
        case .sgd: sgdStep(weights, gradients, learningRate)
        }
    }

    /// torch.optim.AdamW (single-tensor path):
    ///   w <- w (1 - lr wd);  m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2
    ///   w <- w - (lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps)
    private func adamWStep(_ w: UnsafeMutableBufferPointer<Float>, _ g: UnsafeBufferPointer<Float>, _ lr: Double) {
        let t = Double(stepCount)
        let b1 = Float(options.beta1), b2 = Float(options.beta2)
        let decay = Float(lr * options.weightDecay)
        let stepSize = Float(lr / (1 - pow(options.beta1, t)))
        let secondCorrectionRoot = Float((1 - pow(options.beta2, t)).squareRoot())
        let eps = Float(options.epsilon)
        firstMoment.withUnsafeMutableBufferPointer { m in
            secondMoment.withUnsafeMutableBufferPointer { v in
                decayMask.withUnsafeBufferPointer { mask in
                    for i in 0..<w.count {
                        let gradient = g[i]
                        var weight = w[i]
                        weight -= weight * decay * mask[i]
                        let mi = m[i] + (gradient - m[i]) * (1 - b1)  // torch lerp_
                        let vi = v[i] * b2 + (1 - b2) * gradient * gradient
                        m[i] = mi
                        v[i] = vi
                        let denominator = vi.squareRoot() / secondCorrectionRoot + eps
                        w[i] = weight - stepSize * (mi / denominator)
                    }
                }
            }
        }
    }

    /// torch.optim.SGD without momentum: w <- w - lr (g + wd w) (no decay on norms).
    private func sgdStep(_ w: UnsafeMutableBufferPointer<Float>, _ g: UnsafeBufferPointer<Float>, _ lr: Double) {
        let rate = Float(lr), decay = Float(options.weightDecay)
        decayMask.withUnsafeBufferPointer { mask in
            for i in 0..<w.count {
                w[i] -= rate * (g[i] + decay * mask[i] * w[i])
            }
        }
    }

    // MARK: - State for checkpoints

    /// Restores a saved state; sizes must match this optimizer's.
    public func restore(stepCount: Int, firstMoment: [Float], secondMoment: [Float]) throws {
        let expected = options.kind == .adamw ? parameterCount : 0
        guard firstMoment.count == expected, secondMoment.count == expected, stepCount >= 0 else {
            throw TrainingError.checkpoint(
                "optimizer state has \(firstMoment.count)/\(secondMoment.count) moments, expected \(expected) "
                    + "(was the checkpoint written for another model or optimizer?)")
        }
        self.stepCount = stepCount
        self.firstMoment = firstMoment
        self.secondMoment = secondMoment
    }
}
