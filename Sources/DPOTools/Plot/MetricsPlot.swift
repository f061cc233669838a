import Foundation
import Training

/// The standard DPO plots from `metrics.jsonl` files: loss, rewards/chosen and
/// rewards/rejected, rewards/margins and rewards/accuracies against step, runs overlaid.
public enum MetricsPlot {
    /// One training run to draw.
    public struct Run: Sendable {
        public var name: String
        public var log: MetricsLog

        public init(name: String, log: MetricsLog) {
            self.name = name
            self.log = log
        }

        /// Reads `metrics.jsonl`; the run is named `label`, or else after the file's directory
        /// (`runs/dpo/metrics.jsonl` -> `dpo`).
        public static func read(_ url: URL, label: String? = nil) throws -> Run {
            let directoryName = url.deletingLastPathComponent().lastPathComponent
            let name = label ?? (directoryName.isEmpty || directoryName == "/" ? url.lastPathComponent : directoryName)
            return Run(name: name, log: try MetricsLog.read(url))
        }
    }

    /// Training panels, then eval_loss and eval_rewards/accuracies if any run logged them.
    /// - Parameter smoothing: TensorBoard-style exponential moving average weight in [0, 1);
    ///   above 0 the raw values are drawn faded behind the smoothed line (eval panels are not smoothed).
    public static func figure(runs: [Run], title: String? = nil, smoothing: Double = 0) -> PlotFigure {
        var panels = [
            panel("loss", runs: runs, metrics: [("loss", nil)], smoothing: smoothing),
            panel("rewards/chosen, rewards/rejected", runs: runs,
                  metrics: [("rewards/chosen", "chosen"), ("rewards/rejected", "rejected")], smoothing: smoothing),
            panel("rewards/margins", runs: runs, metrics: [("rewards/margins", nil)], smoothing: smoothing),
            panel("rewards/accuracies", runs: runs, metrics: [("rewards/accuracies", nil)], smoothing: smoothing),
        ]
        let hasEval = runs.contains { $0.log.names.contains("eval_loss") }
        if hasEval {
            panels += [
                panel("eval_loss", runs: runs, metrics: [("eval_loss", nil)], smoothing: 0),
                panel("eval_rewards/accuracies", runs: runs, metrics: [("eval_rewards/accuracies", nil)], smoothing: 0),
            ]
        }
        return PlotFigure(title: title, panels: panels, columns: 2)
    }

    /// Renders the standard figure to `.svg` or `.png` (by the extension of `url`).
    public static func render(runs: [Run], title: String? = nil, smoothing: Double = 0, to url: URL) throws {
        try figure(runs: runs, title: title, smoothing: smoothing).write(to: url)
    }

    /// Custom panels (e.g. pi(rejected) over steps for several betas) to `.svg` or `.png`.
    public static func render(panels: [PlotPanel], title: String? = nil, columns: Int = 2, to url: URL) throws {
        try PlotFigure(title: title, panels: panels, columns: columns).write(to: url)
    }

    /// What training calls at the end: reads `OUT/metrics.jsonl` and writes
    /// `OUT/plots/metrics.svg` and `OUT/plots/metrics.png`. Returns the files written.
    @discardableResult
    public static func writeTrainingPlots(outputDirectory: URL, title: String? = nil) throws -> [URL] {
        let run = try Run.read(outputDirectory.appendingPathComponent("metrics.jsonl"))
        let plots = outputDirectory.appendingPathComponent("plots")
        let files = [plots.appendingPathComponent("metrics.svg"), plots.appendingPathComponent("metrics.png")]
        for file in files { try render(runs: [run], title: title ?? run.name, to: file) }
        return files
    }

    // MARK: - Panels

    /// One panel: for each run (one colour per run) the listed metrics (solid, then dashed).
    /// A metric's legend suffix is added only when several metrics share the panel.
    static func panel(_ title: String, runs: [Run], metrics: [(name: String, suffix: String?)],
                      smoothing: Double) -> PlotPanel {
        var series: [PlotSeries] = []
        let smoothed = smoothing > 0 && smoothing < 1
        for (runIndex, run) in runs.enumerated() {
            for (metricIndex, metric) in metrics.enumerated() {
                let (steps, values) = run.log.series(metric.name)
                guard !steps.isEmpty else { continue }
                let name = metric.suffix.map { "\(run.name) \($0)" } ?? run.name
                if smoothed {
                    series.append(PlotSeries(name: name + " (raw)", x: steps, y: values, colorIndex: runIndex,
                                             dashed: metricIndex > 0, faded: true))
                }
                series.append(PlotSeries(name: name, x: steps, y: smoothed ? exponentialMovingAverage(values, weight: smoothing) : values,
                                         colorIndex: runIndex, dashed: metricIndex > 0))
            }
        }
        return PlotPanel(title: title, xLabel: smoothed ? "step (smoothed \(smoothing))" : "step", series: series)
    }

    /// TensorBoard's smoothing: an exponential moving average, debiased at the start so the
    /// first values are not pulled toward 0. Non-finite values pass through and are skipped.
    public static func exponentialMovingAverage(_ values: [Double], weight: Double) -> [Double] {
        var average = 0.0, count = 0
        return values.map { value in
            guard value.isFinite else { return value }
            average = average * weight + (1 - weight) * value
            count += 1
            return average / (1 - pow(weight, Double(count)))
        }
    }
}
