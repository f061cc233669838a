import Foundation
import Training

/// What `dpo demo` measured: the SFT model (before DPO) and the DPO model (after), the
/// last DPO training metrics, and the wall time of each stage. Written as
/// `demo_report.json` and `demo_report.md`, with the plots in `plots/`.
public struct DemoReport: Codable, Sendable {
    public var worldSize: Int
    public var seed: Int
    public var parameterCount: Int
    /// Before DPO (the SFT model, also DPO's reference) and after.
    public var sft: DemoEvaluation
    public var dpo: DemoEvaluation
    public var finalDPOMetrics: [String: Double]
    public var sftSeconds: Double
    public var dpoSeconds: Double
    public var totalSeconds: Double
    public var settings: [String: String]

    /// Held-out task accuracy gained by DPO (after - before).
    public var heldOutAccuracyGain: Double { dpo.heldOutAccuracy - sft.heldOutAccuracy }

    // MARK: - Text

    /// The before/after table as printed at the end of the demo.
    public var lines: [String] {
        func percent(_ v: Double) -> String { String(format: "%5.1f%%", v * 100) }
        func number(_ v: Double) -> String { String(format: "%7.3f", v) }
        let rows: [(String, String, String)] = [
            ("task accuracy, held-out prompts (\(sft.heldOutPrompts))", percent(sft.heldOutAccuracy), percent(dpo.heldOutAccuracy)),
            ("task accuracy, training prompts (\(sft.trainPrompts))", percent(sft.trainAccuracy), percent(dpo.trainAccuracy)),
            ("held-out pairs: log pi(chosen) > log pi(rejected)", percent(sft.heldOutPreferenceAccuracy), percent(dpo.heldOutPreferenceAccuracy)),
            ("held-out reward accuracy (vs the SFT reference)", percent(sft.heldOutRewardAccuracy), percent(dpo.heldOutRewardAccuracy)),
            ("held-out reward margin", number(sft.heldOutRewardMargin), number(dpo.heldOutRewardMargin)),
            ("held-out mean log pi(chosen)", number(sft.heldOutChosenLogps), number(dpo.heldOutChosenLogps)),
            ("held-out mean log pi(rejected)", number(sft.heldOutRejectedLogps), number(dpo.heldOutRejectedLogps)),
        ]
        let width = rows.map(\.0.count).max() ?? 0
        var out = ["\("".padding(toLength: width, withPad: " ", startingAt: 0))   before (SFT)   after (DPO)"]
        for (name, before, after) in rows {
            out.append("\(name.padding(toLength: width, withPad: " ", startingAt: 0))   \(before.leftPadded(12))   \(after.leftPadded(11))")
        }
        out.append(String(format: "wall time: SFT %.0f s, DPO %.0f s, total %.0f s on %d rank(s)", sftSeconds, dpoSeconds, totalSeconds, worldSize))
        return out
    }

    /// The same table in Markdown, with the settings.
    public var markdown: String {
        func percent(_ v: Double) -> String { String(format: "%.1f%%", v * 100) }
        func number(_ v: Double) -> String { String(format: "%.3f", v) }
        var text = "# dpo demo\n\n| | before (SFT) | after (DPO) |\n|---|---:|---:|\n"
        text += "| task accuracy, held-out prompts (\(sft.heldOutPrompts)) | \(percent(sft.heldOutAccuracy)) | \(percent(dpo.heldOutAccuracy)) |\n"
        text += "| task accuracy, training prompts (\(sft.trainPrompts)) | \(percent(sft.trainAccuracy)) | \(percent(dpo.trainAccuracy)) |\n"
        text += "| held-out pairs: log pi(chosen) > log pi(rejected) | \(percent(sft.heldOutPreferenceAccuracy)) | \(percent(dpo.heldOutPreferenceAccuracy)) |\n"
        text += "| held-out reward accuracy (vs SFT reference) | \(percent(sft.heldOutRewardAccuracy)) | \(percent(dpo.heldOutRewardAccuracy)) |\n"
        text += "| held-out reward margin | \(number(sft.heldOutRewardMargin)) | \(number(dpo.heldOutRewardMargin)) |\n"
        text += "| held-out mean log pi(chosen) | \(number(sft.heldOutChosenLogps)) | \(number(dpo.heldOutChosenLogps)) |\n"
        text += "| held-out mean log pi(rejected) | \(number(sft.heldOutRejectedLogps)) | \(number(dpo.heldOutRejectedLogps)) |\n\n"
        text += String(format: "Wall time: SFT %.0f s, DPO %.0f s, total %.0f s on %d rank(s); %d parameters, seed %d.\n\n",
                       sftSeconds, dpoSeconds, totalSeconds, worldSize, parameterCount, seed)
        for key in settings.keys.sorted() { text += "- \(key): \(settings[key]!)\n" }
        return text
    }

    // MARK: - Files

    /// Writes demo_report.json, demo_report.md and plots/demo.{svg,png} into `directory`.
    func write(into directory: URL) throws {
        do {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(self).write(to: directory.appendingPathComponent(DemoRun.markerFileName), options: .atomic)
            try Data(markdown.utf8).write(to: directory.appendingPathComponent("demo_report.md"), options: .atomic)
        } catch { throw DemoError.output("cannot write the demo report into \(directory.path): \(error.localizedDescription)") }
        let sftRun = try MetricsPlot.Run.read(directory.appendingPathComponent("sft/metrics.jsonl"), label: "sft")
        let dpoRun = try MetricsPlot.Run.read(directory.appendingPathComponent("dpo/metrics.jsonl"), label: "dpo")
        let dpoSteps = Double(dpoRun.log.records.last?.step ?? 1)
        var panels = MetricsPlot.figure(runs: [dpoRun], title: nil).panels
        panels.insert(MetricsPlot.panel("sft loss (NLL per chosen token)", runs: [sftRun], metrics: [("loss", nil)], smoothing: 0), at: 0)
        panels.append(PlotPanel(title: "task accuracy (greedy): SFT -> DPO", xLabel: "DPO step", series: [
            PlotSeries(name: "held-out prompts", x: [0, dpoSteps], y: [sft.heldOutAccuracy, dpo.heldOutAccuracy], colorIndex: 0),
            PlotSeries(name: "training prompts", x: [0, dpoSteps], y: [sft.trainAccuracy, dpo.trainAccuracy], colorIndex: 1, dashed: true),
        ]))
        let plots = directory.appendingPathComponent("plots")
        for name in ["demo.svg", "demo.png"] {
            try MetricsPlot.render(panels: panels, title: "dpo demo: SFT then DPO on arithmetic", columns: 2,
                                   to: plots.appendingPathComponent(name))
        }
    }
}

private extension String {
    func leftPadded(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}
