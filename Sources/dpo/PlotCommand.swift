import ArgumentParser
import DPOTools
import Foundation
import Training

/// `dpo plot`: loss, rewards, margins and accuracies of one or more runs, from their
/// `metrics.jsonl`, to an SVG or PNG file.
struct PlotCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plot",
        abstract: "Plot loss, rewards/chosen and rewards/rejected, margins and accuracies against step.",
        discussion: """
        Several --metrics files are overlaid, one colour per run, with a legend. A run is named \
        after the directory holding its metrics file, or by the matching --label.
        Example: dpo plot --metrics runs/b0.1/metrics.jsonl --metrics runs/b0.5/metrics.jsonl --out betas.png
        """)

    @Option(name: .long, help: ArgumentHelp("A metrics.jsonl written by `dpo train`; repeat to overlay runs.", valueName: "file"))
    var metrics: [String] = []

    @Option(name: .long, help: ArgumentHelp("Run names for the legend, in the order of --metrics (default: each file's directory name).", valueName: "name"))
    var label: [String] = []

    @Option(name: .long, help: ArgumentHelp("Output file; .svg or .png.", valueName: "file"))
    var out: String

    @Option(name: .long, help: "Figure title (default: none).")
    var title: String?

    @Option(name: .long, help: ArgumentHelp("Smooth training curves like TensorBoard (exponential moving average weight in [0, 1), raw values drawn faded; 0 = off).", valueName: "weight"))
    var smooth: Double = 0

    func validate() throws {
        if metrics.isEmpty { throw ValidationError("give at least one --metrics FILE (the metrics.jsonl of a run)") }
        if !label.isEmpty, label.count != metrics.count {
            throw ValidationError("--label was given \(label.count) time(s) but --metrics \(metrics.count) time(s); give one label per metrics file or none")
        }
        if !(smooth >= 0 && smooth < 1) { throw ValidationError("--smooth \(smooth) must be in [0, 1), e.g. 0.6; 0 turns smoothing off") }
        let pathExtension = URL(fileURLWithPath: out).pathExtension.lowercased()
        if pathExtension != "svg", pathExtension != "png" {
            throw ValidationError("--out \(out) must end in .svg or .png")
        }
    }

    func run() throws {
        // MetricsError and PlotError describe themselves; ArgumentParser prints "Error: <message>".
        let runs = try metrics.enumerated().map { index, path in
            try MetricsPlot.Run.read(URL(fileURLWithPath: path), label: label.isEmpty ? nil : label[index])
        }
        var standardError = FileHandleOutputStream(.standardError)
        for run in runs { for note in run.log.notes { print("warning: \(note)", to: &standardError) } }
        if let empty = zip(metrics, runs).first(where: { $0.1.log.records.isEmpty }) {
            throw MetricsError("\(empty.0) holds no metrics (no step was logged); plot the metrics.jsonl of a run that logged at least one step")
        }
        try MetricsPlot.render(runs: runs, title: title, smoothing: smooth, to: URL(fileURLWithPath: out))
        print("wrote \(out)")
    }
}
