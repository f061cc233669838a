import Foundation

/// What must hold before `final/` is written: a `final/` is what users load, so a run that
/// never updated the weights, or whose weights are not finite, must not leave one behind
/// and must not exit 0.
public enum FinalModelCheck {
    /// Throws when every step this run took was skipped (non-finite loss or gradients), or when
    /// the weights hold a NaN or an infinity (the first such index is named).
    public static func check(master: [Float], stepsRun: Int, skippedSteps: Int) throws {
        if stepsRun > 0 && skippedSteps >= stepsRun {
            throw TrainingError.numerical(
                "all \(stepsRun) step(s) of this run were skipped (non-finite loss or gradients), so the weights never changed; "
                    + "no final/ was written. Lower --lr, use --precision fp32, or check the data")
        }
        if let bad = master.firstIndex(where: { !$0.isFinite }) {
            throw TrainingError.numerical(
                "the final weights are not finite (weight \(bad) is \(master[bad])); no final/ was written. "
                    + "Resume from an earlier checkpoint with a lower --lr, or use --precision fp32")
        }
    }
}
