import Distributed
import Foundation
import Preference
import Training

/// The experiments that explain DPO (`dpo experiment <name>`), on the demo's task and SFT model:
/// each trains several runs from the same SFT model on the same preference pairs and produces
/// a table (printed, `OUT/<name>.md`, `OUT/<name>.json`) and a plot (`OUT/<name>.svg`, `.png`).
public enum Experiment: String, CaseIterable, Sendable {
    /// Several betas: final margin, reward accuracy, task accuracy and drift from the reference.
    case betaSweep = "beta-sweep"
    /// pi(rejected) over steps for several betas: DPO drives it toward 0, IPO settles at a level set by beta.
    case dpoVsIpo = "dpo-vs-ipo"
    /// SFT on the chosen answers vs DPO on the pairs: task score and rejected likelihood after each.
    case dpoVsSft = "dpo-vs-sft"

    public struct Parameters: Sendable {
        public var outputDirectory: String
        /// Fewer runs and steps (for a smoke test).
        public var quick = false
        public init(outputDirectory: String) { self.outputDirectory = outputDirectory }
    }

    /// Runs the experiment; rank 0 writes the table and plots. `onMessage` gets stage notices (rank 0),
    /// `onProgress` the trainer's progress with the run's name.
    public func run(_ p: Parameters, communicator: Communicator, onMessage: ((String) -> Void)? = nil,
                    onProgress: ((String, ProgressSnapshot) -> Void)? = nil) throws -> ExperimentTable {
        var demoParameters = DemoParameters(outputDirectory: p.outputDirectory)
        demoParameters.dpoEpochs = p.quick ? 2 : 4
        let demo = DemoRun(parameters: demoParameters, communicator: communicator)
        demo.onMessage = onMessage
        demo.onProgress = onProgress
        let runner = ExperimentRunner(
            demo: demo, base: try demo.prepareBase(), runs: URL(fileURLWithPath: p.outputDirectory).appendingPathComponent("runs"),
            quick: p.quick, dpoEpochs: demoParameters.dpoEpochs, communicator: communicator, onMessage: onMessage)
        let (table, panels): (ExperimentTable, [PlotPanel])
        switch self {
        case .betaSweep: (table, panels) = try runner.betaSweep(rawValue)
        case .dpoVsIpo: (table, panels) = try runner.dpoVsIpo(rawValue)
        case .dpoVsSft: (table, panels) = try runner.dpoVsSft(rawValue)
        }
        try write(table, panels: panels, into: URL(fileURLWithPath: p.outputDirectory), communicator: communicator)
        return table
    }

    /// Rank 0 writes the table and the plots; every rank learns whether that failed.
    private func write(_ table: ExperimentTable, panels: [PlotPanel], into out: URL, communicator: Communicator) throws {
        var failure: Error?
        if communicator.isPrimary {
            do {
                try table.write(into: out)
                for name in ["\(rawValue).svg", "\(rawValue).png"] {
                    try MetricsPlot.render(panels: panels, title: "dpo experiment \(rawValue)", columns: 2, to: out.appendingPathComponent(name))
                }
            } catch { failure = error }
        }
        let anyFailed = communicator.size > 1 ? communicator.anyRank(failure != nil) : failure != nil
        if let failure { throw failure }
        if anyFailed { throw DemoError.output("rank 0 could not write the \(rawValue) results") }
    }
}

/// The runs of one experiment: preference runs from the demo's SFT model, and the table and
/// panels of each experiment.
struct ExperimentRunner {
    let demo: DemoRun
    let base: DemoRun.Base
    let runs: URL
    let quick: Bool
    let dpoEpochs: Int
    let communicator: Communicator
    let onMessage: ((String) -> Void)?

    /// One preference run from the SFT model; returns its metrics and its held-out evaluation.
    func preferenceRun(_ name: String, configure: (inout TrainingParameters) -> Void) throws
        -> (log: MetricsLog, scores: DemoEvaluation, beta: Double) {
        var t = try demo.preferenceStage(base: base, outputDirectory: runs.appendingPathComponent(name))
        configure(&t)
        if communicator.isPrimary { onMessage?("run \(name): loss \(t.loss.kind.rawValue), beta \(t.loss.beta), lr \(t.learningRate), \(t.epochs) epochs") }
        _ = try demo.train(t, stage: name)
        let directory = runs.appendingPathComponent(name)
        let scores = try DemoEvaluation.evaluate(modelDirectory: directory.appendingPathComponent("final").path,
                                                 heldOutPairsFile: base.heldOutFile.path, reference: base.sftScores, beta: t.loss.beta)
        let log = try MetricsLog.read(directory.appendingPathComponent("metrics.jsonl"))
        return (log, scores, t.loss.beta)
    }

    /// Mean over held-out pairs of log pi - log pi_ref of the chosen (index 0) or rejected (1) answers.
    func drift(_ scores: DemoEvaluation, index: Int) -> Double {
        let pairs = zip(scores.pairLogps, base.sftScores.pairLogps)
        return pairs.map { $0[index] - $1[index] }.reduce(0, +) / Double(max(scores.pairLogps.count, 1))
    }

    func betaSweep(_ experiment: String) throws -> (ExperimentTable, [PlotPanel]) {
        let betas = quick ? [0.1, 1.0] : [0.05, 0.1, 0.3, 1.0, 3.0]
        var table = ExperimentTable(
            experiment: experiment,
            caption: "DPO from the same SFT model on the same pairs, one run per beta. Drift = mean over held-out pairs of "
                + "log pi - log pi_ref (nats): a small beta lets the policy move further from the reference.",
            columns: ["beta", "train margin", "train reward acc", "held-out reward acc", "held-out task acc",
                      "drift chosen", "drift rejected"],
            decimals: [2, 3, 3, 3, 3, 3, 3])
        var metricRuns: [MetricsPlot.Run] = []
        var drifts: [(Double, Double, Double)] = []
        for beta in betas {
            let name = "beta-\(beta)"
            let run = try preferenceRun(name) { $0.loss.kind = .sigmoid; $0.loss.beta = beta }
            let last = run.log.records.last { $0["rewards/margins"] != nil }
            table.append(name, [beta, last?["rewards/margins"], last?["rewards/accuracies"], run.scores.heldOutRewardAccuracy,
                                run.scores.heldOutAccuracy, drift(run.scores, index: 0), drift(run.scores, index: 1)])
            metricRuns.append(MetricsPlot.Run(name: name, log: run.log))
            drifts.append((beta, drift(run.scores, index: 0), drift(run.scores, index: 1)))
        }
        var panels = MetricsPlot.figure(runs: metricRuns).panels
        panels.append(PlotPanel(title: "drift from reference (nats)", xLabel: "log10 beta", series: [
            PlotSeries(name: "chosen", x: drifts.map { log10($0.0) }, y: drifts.map(\.1), colorIndex: 0),
            PlotSeries(name: "rejected", x: drifts.map { log10($0.0) }, y: drifts.map(\.2), colorIndex: 1, dashed: true),
        ]))
        return (table, panels)
    }

    func dpoVsIpo(_ experiment: String) throws -> (ExperimentTable, [PlotPanel]) {
        let betas = quick ? [0.1, 1.0] : [0.1, 0.5, 1.0]
        var table = ExperimentTable(
            experiment: experiment,
            caption: "pi(rejected) during training: logps/rejected is the summed log-prob of the rejected answers of the training "
                + "batches. DPO keeps pushing it down whatever beta; IPO's squared loss (on per-token means) stops once the "
                + "log-ratio gap reaches 1/(2 beta), so it settles higher for a larger beta.",
            columns: ["beta", "logps/rejected at start", "logps/rejected at end", "log10 pi(rejected) at end", "margin at end",
                      "held-out task acc"],
            decimals: [2, 3, 3, 2, 3, 3])
        var series: [PlotSeries] = []
        for (lossIndex, loss) in [PreferenceLossKind.sigmoid, .ipo].enumerated() {
            for (betaIndex, beta) in betas.enumerated() {
                let name = "\(loss == .sigmoid ? "dpo" : "ipo")-beta-\(beta)"
                let run = try preferenceRun(name) {
                    $0.loss.kind = loss
                    $0.loss.beta = beta
                    $0.epochs = dpoEpochs * 2
                    $0.logEvery = 2
                }
                let (steps, rejected) = run.log.series("logps/rejected")
                let last = run.log.records.last { $0["rewards/margins"] != nil }
                table.append(name, [beta, rejected.first, rejected.last, rejected.last.map { $0 / log(10) }, last?["rewards/margins"],
                                    run.scores.heldOutAccuracy])
                series.append(PlotSeries(name: name, x: steps, y: rejected.map { exp($0) }, colorIndex: betaIndex, dashed: lossIndex == 1))
            }
        }
        let panels = [
            PlotPanel(title: "pi(rejected): DPO solid, IPO dashed", series: series),
            PlotPanel(title: "logps/rejected", series: series.map {
                PlotSeries(name: $0.name, x: $0.x, y: $0.y.map { log(max($0, 1e-30)) }, colorIndex: $0.colorIndex, dashed: $0.dashed)
            }),
        ]
        return (table, panels)
    }

    func dpoVsSft(_ experiment: String) throws -> (ExperimentTable, [PlotPanel]) {
        var table = ExperimentTable(
            experiment: experiment,
            caption: "From the same SFT model and the same preference pairs: SFT on the chosen answers only, DPO, and DPO with the "
                + "chosen NLL added (rpo_alpha 1). Log-probs are means over held-out pairs.",
            columns: ["held-out task acc", "train task acc", "held-out log pi(chosen)", "held-out log pi(rejected)",
                      "held-out pref acc"],
            decimals: [3, 3, 3, 3, 3])
        let s = base.sftScores
        table.append("start (SFT model)", [s.heldOutAccuracy, s.trainAccuracy, s.heldOutChosenLogps, s.heldOutRejectedLogps,
                                           s.heldOutPreferenceAccuracy])
        var metricRuns: [MetricsPlot.Run] = []
        let variants: [(String, (inout TrainingParameters) -> Void)] = [
            ("sft-on-chosen", { $0.loss.kind = .sft }),
            ("dpo", { $0.loss.kind = .sigmoid; $0.loss.beta = 0.1 }),
            ("dpo+nll", { $0.loss.kind = .sigmoid; $0.loss.beta = 0.1; $0.loss.rpoAlpha = 1 }),
        ]
        for (name, configure) in variants {
            let run = try preferenceRun(name, configure: configure)
            let r = run.scores
            table.append(name, [r.heldOutAccuracy, r.trainAccuracy, r.heldOutChosenLogps, r.heldOutRejectedLogps, r.heldOutPreferenceAccuracy])
            metricRuns.append(MetricsPlot.Run(name: name, log: run.log))
        }
        let panels = [
            MetricsPlot.panel("logps/chosen (training batches)", runs: metricRuns, metrics: [("logps/chosen", nil)], smoothing: 0),
            MetricsPlot.panel("logps/rejected (training batches)", runs: metricRuns, metrics: [("logps/rejected", nil)], smoothing: 0),
            MetricsPlot.panel("eval_logps/rejected (held-out pairs)", runs: metricRuns, metrics: [("eval_logps/rejected", nil)], smoothing: 0),
            MetricsPlot.panel("eval_rewards/accuracies (held-out pairs)", runs: metricRuns, metrics: [("eval_rewards/accuracies", nil)], smoothing: 0),
        ]
        return (table, panels)
    }
}
