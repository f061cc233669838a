import Foundation
import Preference

/// The metrics of the steps since the last log: summed per step, reduced over ranks and
/// written every `--log-every` steps (its pending sums are saved in checkpoints so a resumed
/// run logs exactly what the uninterrupted one would).
struct MetricsWindow {
    /// Metric sums of the applied steps since the last log (this rank).
    var pending: PreferenceMetricSums
    /// Input tokens of the steps since the last log (all ranks), and when the window began.
    var tokens = 0.0
    var start = ContinuousClock().now
    /// The last logged training metrics, and the step they were logged at.
    var last: [(name: String, value: Double)] = []
    var lastStep: Int?

    init(pendingPacked: [Double]) {
        pending = pendingPacked.count == PreferenceMetricSums.packedCount ? PreferenceMetricSums(packed: pendingPacked) : PreferenceMetricSums()
    }

    /// The window's seconds so far.
    var seconds: Double { DPOStep.seconds(ContinuousClock().now - start) }

    /// What the console shows at `step`, by metrics.jsonl's names: at a logged step the record
    /// just written (the window's average over all ranks); between logs (only a terminal's bar
    /// redraws then) this rank's window so far. tokens_per_second is the window's rate either way.
    func shown(step: Int, options: PreferenceLossOptions) -> [String: Double] {
        let figures = lastStep == step ? last
            : pending.metrics(options: options) + [("tokens_per_second", seconds > 0 ? tokens / seconds : 0)]
        return Dictionary(figures.map { ($0.name, $0.value) }, uniquingKeysWith: { first, _ in first })
    }

    mutating func reset() {
        pending = PreferenceMetricSums()
        tokens = 0
        start = ContinuousClock().now
    }
}
