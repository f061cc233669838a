import Foundation
import Llama

/// What must hold before `final/` is written: a `final/` is what users load, so a run that
/// never updated the weights, or whose weights are not finite, must not leave one behind
/// and must not exit 0.
public enum FinalModelCheck {
    /// Throws when every step this run took was skipped (non-finite loss or gradients), or when
    /// the weights hold a NaN or an infinity (the first such index is named). `precision` fits
    /// the advice to the run (nil: not known, all advice given).
    public static func check(master: [Float], stepsRun: Int, skippedSteps: Int, precision: Precision? = nil) throws {
        if stepsRun > 0 && skippedSteps >= stepsRun {
            throw TrainingError.numerical(
                "all \(stepsRun) step(s) of this run were skipped (non-finite loss or gradients), so the weights never changed; "
                    + "no final/ was written. " + NumericalAdvice.remedies(precision: precision))
        }
        if let bad = master.firstIndex(where: { !$0.isFinite }) {
            throw TrainingError.numerical(
                "the final weights are not finite (weight \(bad) is \(master[bad])); no final/ was written. "
                    + NumericalAdvice.remedies(precision: precision) + " (a checkpoint from before the overflow can be resumed)")
        }
    }
}
