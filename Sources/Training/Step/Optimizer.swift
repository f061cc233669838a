import Foundation
import Kernels
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

/// An optimizer over the flat fp32 master weights (one fused sweep over the `ParameterLayout` buffer).
///
/// State (step count, first and second moments) uses the same layout as the weights, so it
/// saves and restores as flat arrays. The moments are long-lived `ScalarBuffer`s: one mapping
/// each, whose pages start zeroed (Adam's initial state) without a fill pass. `step` is only
/// called with finite gradients (the trainer skips non-finite steps before reaching it), so a
/// skipped step leaves every state array untouched.
public final class FlatOptimizer {
    public let options: OptimizerOptions
    /// Contiguous runs of the parameters with and without weight decay, in order, covering
    /// 0..<parameterCount (norm weights and biases do not decay, as transformers' Trainer).
    let decayRuns: [(range: Range<Int>, decays: Bool)]
    /// Updates taken so far (PyTorch's per-parameter `step`).
    public private(set) var stepCount: Int = 0
    /// Adam moments, layout order; empty for SGD. [parameters]
    public let firstMoment: ScalarBuffer<Float>
    public let secondMoment: ScalarBuffer<Float>

    /// Elements of the flat trainable vector this optimizer updates: all of them, or (ZeRO-1,
    /// `--zero 1`) this rank's shard; `step` then takes weights and gradients of the shard only.
    public let range: Range<Int>

    public var parameterCount: Int { range.count }

    public convenience init(options: OptimizerOptions, layout: ParameterLayout) {
        self.init(options: options, layout: layout, range: 0..<layout.totalCount)
    }

    /// An optimizer of elements `range` of the layout only (state [range.count]).
    public convenience init(options: OptimizerOptions, layout: ParameterLayout, range: Range<Int>) {
        precondition(range.lowerBound >= 0 && range.upperBound <= layout.totalCount, "optimizer range \(range) outside the layout")
        let exempt = layout.entries.filter { $0.isNorm || $0.isBias }.map { $0.range.clamped(to: range) }
            .filter { !$0.isEmpty }.map { ($0.lowerBound - range.lowerBound)..<($0.upperBound - range.lowerBound) }
        self.init(options: options, runs: Self.runs(count: range.count, exempt: exempt), range: range)
    }

    /// An optimizer over `decayMask.count` parameters (elements `range` of the trainable vector,
    /// default all of them), weight decay where the mask is 1 and none where it is 0 (LoRA
    /// adapters: all 1, as transformers' Trainer decays every non-bias, non-norm weight).
    public convenience init(options: OptimizerOptions, decayMask: [Float], range: Range<Int>? = nil) {
        let range = range ?? 0..<decayMask.count
        precondition(range.count == decayMask.count, "optimizer range \(range) does not match its \(decayMask.count) decay flags")
        precondition(decayMask.allSatisfy { $0 == 0 || $0 == 1 }, "decay mask values must be 0 or 1")
        var exempt: [Range<Int>] = []
        var index = 0
        while index < decayMask.count {
            guard decayMask[index] == 0 else { index += 1; continue }
            let start = index
            while index < decayMask.count && decayMask[index] == 0 { index += 1 }
            exempt.append(start..<index)
        }
        self.init(options: options, runs: Self.runs(count: range.count, exempt: exempt), range: range)
    }

    private init(options: OptimizerOptions, runs: [(range: Range<Int>, decays: Bool)], range: Range<Int>) {
        self.options = options
        self.range = range
        decayRuns = runs
        let momentCount = options.kind == .adamw ? range.count : 0
        firstMoment = ScalarBuffer(count: momentCount)
        secondMoment = ScalarBuffer(count: momentCount)
    }

    /// Alternating runs over 0..<count: decaying except on the `exempt` ranges (may overlap, any order).
    static func runs(count: Int, exempt: [Range<Int>]) -> [(range: Range<Int>, decays: Bool)] {
        var runs: [(range: Range<Int>, decays: Bool)] = []
        var cursor = 0
        for r in exempt.sorted(by: { $0.lowerBound < $1.lowerBound }) where r.upperBound > cursor {
            let start = max(r.lowerBound, cursor)
            if start > cursor { runs.append((cursor..<start, true)) }
            runs.append((start..<r.upperBound, false))
            cursor = r.upperBound
        }
        if cursor < count { runs.append((cursor..<count, true)) }
        return runs
    }

    // MARK: - Update

    /// What the step does to the gradients before the update: g <- (g x unscale) x clip
    /// (1 / loss scale, then the clipping factor; 1 = none).
    public struct GradientScaling: Sendable {
        public var unscale: Float
        public var clip: Float
        public init(unscale: Float = 1, clip: Float = 1) {
            self.unscale = unscale
            self.clip = clip
        }
    }

    /// One update of `weights` (fp32 master, layout order) from finite `gradients` (left as they are).
    public func step(weights: UnsafeMutableBufferPointer<Float>, gradients: UnsafeBufferPointer<Float>, learningRate: Double) {
        precondition(weights.count == parameterCount && gradients.count == parameterCount, "optimizer buffer size")
        stepCount += 1
        switch options.kind {
        case .adamw:
            AdamWSweep.run(adamWHyper(learningRate, GradientScaling()), arrays(weights, gradients.baseAddress, nil, .none),
                           count: parameterCount, decaying: decayRuns)
        case .sgd: sgdStep(weights, gradients, learningRate)
        }
    }

    /// The whole optimizer pass in one sweep: `gradients` scaled in place by `scaling`, the
    /// update of `weights`, and the new weights written to `output` (the model's working
    /// weights at this optimizer's elements; fp32 or rounded to binary16), per element.
    public func step(weights: UnsafeMutableBufferPointer<Float>, gradients: UnsafeMutableBufferPointer<Float>,
                     scaling: GradientScaling, learningRate: Double, output: AdamWSweep.Output) {
        precondition(weights.count == parameterCount && gradients.count == parameterCount, "optimizer buffer size")
        stepCount += 1
        switch options.kind {
        case .adamw:
            AdamWSweep.run(adamWHyper(learningRate, scaling), arrays(weights, gradients.baseAddress, gradients.baseAddress, output),
                           count: parameterCount, decaying: decayRuns)
        case .sgd:
            // The exact-gradient-check rule: separate passes are fine here.
            GradientClipping.scale(gradients, unscale: scaling.unscale, clip: scaling.clip)
            sgdStep(weights, UnsafeBufferPointer(gradients), learningRate)
            Self.write(UnsafeBufferPointer(weights), to: output)
        }
    }

    /// torch.optim.AdamW (single-tensor path), as float32 constants of step t:
    ///   w <- w (1 - lr wd);  m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2
    ///   w <- w - (lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps)
    private func adamWHyper(_ lr: Double, _ scaling: GradientScaling) -> AdamWSweep.Hyper {
        let t = Double(stepCount)
        let b1 = Float(options.beta1), b2 = Float(options.beta2)
        return AdamWSweep.Hyper(
            unscale: scaling.unscale, clip: scaling.clip, one_minus_beta1: 1 - b1, beta2: b2, one_minus_beta2: 1 - b2,
            decay: Float(lr * options.weightDecay), step_size: Float(lr / (1 - pow(options.beta1, t))),
            correction_root: Float((1 - pow(options.beta2, t)).squareRoot()), epsilon: Float(options.epsilon))
    }

    private func arrays(_ w: UnsafeMutableBufferPointer<Float>, _ g: UnsafePointer<Float>?, _ gOut: UnsafeMutablePointer<Float>?,
                        _ output: AdamWSweep.Output) -> AdamWSweep.Arrays {
        // Empty buffers may have no base address; the sweep then touches nothing.
        let dummy = firstMoment.pointer
        return AdamWSweep.Arrays(
            weights: w.baseAddress ?? dummy, gradients: g ?? UnsafePointer(dummy), gradientsOut: gOut,
            firstMoment: firstMoment.pointer, secondMoment: secondMoment.pointer, output: output)
    }

    /// torch.optim.SGD without momentum: w <- w - lr (g + wd w) (no decay on norms).
    private func sgdStep(_ w: UnsafeMutableBufferPointer<Float>, _ g: UnsafeBufferPointer<Float>, _ lr: Double) {
        let rate = Float(lr), decay = Float(options.weightDecay)
        for run in decayRuns {
            if run.decays {
                for i in run.range { w[i] -= rate * (g[i] + decay * w[i]) }
            } else {
                for i in run.range { w[i] -= rate * g[i] }
            }
        }
    }

    /// Copies (fp32) or rounds (fp16) `weights` into `output`.
    static func write(_ weights: UnsafeBufferPointer<Float>, to output: AdamWSweep.Output) {
        guard let base = weights.baseAddress else { return }
        switch output {
        case .none: break
        case .fp32(let p): p.update(from: base, count: weights.count)
        case .fp16(let p): Half.fromFloat(base, p, count: weights.count)
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
        firstMoment.withUnsafeBufferPointer { self.firstMoment.update(from: $0) }
        secondMoment.withUnsafeBufferPointer { self.secondMoment.update(from: $0) }
    }
}
