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
    /// The last logged training metrics.
    var last: [(name: String, value: Double)] = []

    init(pendingPacked: [Double]) {
        pending = pendingPacked.count == PreferenceMetricSums.packedCount ? PreferenceMetricSums(packed: pendingPacked) : PreferenceMetricSums()
    }

    /// The window's seconds so far.
    var seconds: Double { DPOStep.seconds(ContinuousClock().now - start) }

    mutating func reset() {
        pending = PreferenceMetricSums()
        tokens = 0
        start = ContinuousClock().now
    }
}
