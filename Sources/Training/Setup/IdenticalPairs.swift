import Foundation
import Preference

/// Pairs whose chosen completion encodes to the same ids as the rejected one carry no
/// preference signal: their loss gradient is zero up to float rounding, and AdamW's
/// normalisation turns that rounding noise into full-size steps. They are counted and
/// reported at start, and dropped unless `--skip-identical false`.
public enum IdenticalPairs {
    /// The pairs to train on and a one-line report (nil when there are no identical pairs).
    /// Throws when dropping would leave nothing.
    /// `--loss sft` never reads the rejected completion (its data may repeat the chosen one there): nothing to check.
    public static func filter(
        _ pairs: [EncodedPair], skip: Bool, loss: PreferenceLossKind, file: String, flag: String
    ) throws -> (pairs: [EncodedPair], report: String?) {
        guard loss != .sft else { return (pairs, nil) }
        let identical = pairs.filter { $0.chosen == $0.rejected }
        guard !identical.isEmpty else { return (pairs, nil) }
        let lines = identical.prefix(5).map { "\($0.index + 1)" }.joined(separator: ", ") + (identical.count > 5 ? ", ..." : "")
        let what = "\(identical.count) of \(pairs.count) pair(s) of \(flag) \(file) have chosen identical to rejected (record(s) \(lines)); "
            + "they carry no preference signal"
        guard skip else { return (pairs, what + "; kept (--skip-identical false)") }
        guard identical.count < pairs.count else {
            throw TrainingError.data(what + ", and no other pair is left; check the \(flag) file's chosen and rejected keys")
        }
        return (pairs.filter { $0.chosen != $0.rejected }, what + ": dropped (pass --skip-identical false to keep them)")
    }
}
