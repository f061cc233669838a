import Foundation

/// `--schedule`: how the learning rate moves over the optimizer steps.
public enum ScheduleKind: String, Codable, CaseIterable, Sendable {
    /// transformers' `get_constant_schedule_with_warmup`.
    case constant
    /// `get_linear_schedule_with_warmup`: warmup, then linear decay to 0 at the last step.
    case linear
    /// `get_cosine_schedule_with_warmup` (half a cosine period): warmup, then cosine decay to 0.
    case cosine
}

/// The learning rate of each optimizer step, as transformers' `get_*_schedule_with_warmup`
/// (a `LambdaLR` factor times the peak rate, evaluated at the 0-based step index, so the
/// first update of a run with warmup has learning rate 0, as in the HF Trainer).
public struct LearningRateSchedule: Equatable, Sendable {
    public var kind: ScheduleKind
    public var peakLearningRate: Double
    public var warmupSteps: Int
    public var totalSteps: Int

    public init(kind: ScheduleKind, peakLearningRate: Double, warmupSteps: Int, totalSteps: Int) {
        self.kind = kind
        self.peakLearningRate = peakLearningRate
        self.warmupSteps = warmupSteps
        self.totalSteps = totalSteps
    }

    /// transformers' `TrainingArguments.get_warmup_steps`: explicit steps win, else
    /// ceil(ratio x total).
    public static func warmupSteps(steps: Int, ratio: Double, totalSteps: Int) -> Int {
        steps > 0 ? steps : Int((Double(totalSteps) * ratio).rounded(.up))
    }

    /// The factor of the peak rate at 0-based optimizer step `step`.
    public func factor(at step: Int) -> Double {
        if step < warmupSteps {
            return Double(step) / Double(max(1, warmupSteps))
        }
        switch kind {
        case .constant:
            return 1
        case .linear:
            return max(0, Double(totalSteps - step) / Double(max(1, totalSteps - warmupSteps)))
        case .cosine:
            let progress = Double(step - warmupSteps) / Double(max(1, totalSteps - warmupSteps))
            return max(0, 0.5 * (1 + cos(Double.pi * 0.5 * 2 * progress)))
        }
    }

    /// The learning rate of 0-based optimizer step `step`.
    public func learningRate(at step: Int) -> Double { peakLearningRate * factor(at: step) }
}
