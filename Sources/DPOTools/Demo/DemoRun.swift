import Distributed
import Foundation
import Llama
import Preference
import Training

/// `dpo demo`: SFT a small model from scratch on answers of mixed quality, DPO it against
/// the SFT model as reference, and measure the task before and after.
///
///     let demo = DemoRun(parameters: .standard(outputDirectory: "runs/demo"), communicator: c)
///     demo.onMessage = { print($0) }
///     let report = try demo.run()
///
/// Every rank runs every stage (the trainer splits each global batch over the ranks);
/// rank 0 alone writes files and calls the callbacks. Scoring is cheap and runs on every
/// rank with the same result.
public final class DemoRun {
    public let parameters: DemoParameters
    public let communicator: Communicator
    /// Start-up facts, stage boundaries and the trainer's messages (rank 0).
    public var onMessage: ((String) -> Void)?
    /// The trainer's progress after each step, with the stage name ("sft" or "dpo") (rank 0).
    public var onProgress: ((String, ProgressSnapshot) -> Void)?

    /// Marks a directory written by the demo, so a later run may replace it.
    public static let markerFileName = "demo_report.json"

    public init(parameters: DemoParameters, communicator: Communicator) {
        self.parameters = parameters
        self.communicator = communicator
    }

    private func message(_ text: String) { if communicator.isPrimary { onMessage?(text) } }

    // MARK: - Run

    public func run() throws -> DemoReport {
        let p = parameters
        let clock = ContinuousClock()
        let start = clock.now
        func seconds(since instant: ContinuousClock.Instant) -> Double {
            let d = clock.now - instant
            return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
        }
        let out = URL(fileURLWithPath: p.outputDirectory)
        let base = try prepareBase()
        let sftSeconds = base.sftSeconds
        let sftScores = base.sftScores

        // 3. DPO against the SFT model.
        let dpoStart = clock.now
        message("stage 2/2: DPO on \(p.dpoPairs) pairs (chosen correct, rejected wrong) against the SFT model "
            + "(\(p.dpoEpochs) epochs, lr \(p.dpoLearningRate), beta \(p.beta)\(p.rpoAlpha > 0 ? ", rpo_alpha \(p.rpoAlpha)" : ""))")
        let dpoDirectory = out.appendingPathComponent("dpo")
        var dpo = try preferenceStage(base: base, outputDirectory: dpoDirectory)
        dpo.loss.kind = .sigmoid
        dpo.loss.beta = p.beta
        dpo.loss.rpoAlpha = p.rpoAlpha
        dpo.learningRate = p.dpoLearningRate
        dpo.epochs = p.dpoEpochs
        let dpoSummary = try train(dpo, stage: "dpo")
        let dpoSeconds = seconds(since: dpoStart)
        let dpoScores = try DemoEvaluation.evaluate(modelDirectory: dpoDirectory.appendingPathComponent("final").path,
                                                   heldOutPairsFile: base.heldOutFile.path, reference: sftScores, beta: p.beta)
        message("DPO model: held-out task accuracy \(percent(dpoScores.heldOutAccuracy)), "
            + "training-prompt accuracy \(percent(dpoScores.trainAccuracy))")

        // 4. The report and the plots (rank 0).
        let report = DemoReport(
            worldSize: communicator.size, seed: p.seed, parameterCount: ParameterLayout(config: p.config).totalCount,
            sft: sftScores, dpo: dpoScores,
            finalDPOMetrics: Dictionary(dpoSummary.lastMetrics.map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a }),
            sftSeconds: sftSeconds, dpoSeconds: dpoSeconds, totalSeconds: seconds(since: start), settings: p.settingsDescription)
        var failure: Error?
        if communicator.isPrimary {
            do { try report.write(into: out) } catch { failure = error }
        }
        try agree(failure)
        return report
    }

    // MARK: - Stages

    /// What every demo and experiment starts from: the data files and the SFT model.
    public struct Base: Sendable {
        public var dataDirectory: URL
        public var dpoFile: URL
        public var heldOutFile: URL
        public var sftModel: URL
        public var sftScores: DemoEvaluation
        public var sftSeconds: Double
    }

    /// Stage 1: OUT prepared, data written, a fresh model SFT-trained on answers of mixed quality, and scored.
    public func prepareBase() throws -> Base {
        let p = parameters
        let clock = ContinuousClock()
        let out = URL(fileURLWithPath: p.outputDirectory)
        let dataDirectory = out.appendingPathComponent("data")
        let initDirectory = out.appendingPathComponent("init")
        let sftDirectory = out.appendingPathComponent("sft")
        let sftBatch = try DemoParameters.perRankBatch(global: p.sftGlobalBatch, worldSize: communicator.size)
        _ = try DemoParameters.perRankBatch(global: p.dpoGlobalBatch, worldSize: communicator.size)

        // OUT, the data and the initial model (rank 0 writes; the others wait).
        var failure: Error?
        if communicator.isPrimary {
            do {
                try Self.prepareOutputDirectory(out)
                _ = try DemoData.write(p, into: dataDirectory)
                var initParameters = ModelInit.Parameters(config: p.config, outputDirectory: initDirectory.path)
                initParameters.seed = UInt64(p.seed)
                initParameters.overwrite = true
                _ = try ModelInit.write(initParameters)
            } catch { failure = error }
        }
        try agree(failure)
        message("\(out.path) on \(communicator.size) rank(s): arithmetic task, \(p.config.hiddenSize)-wide "
            + "\(p.config.numHiddenLayers)-layer model (\(ParameterLayout(config: p.config).totalCount) parameters) from scratch")

        let sftStart = clock.now
        message("stage 1/2: SFT on \(p.sftExamples) answers, \(Int((p.sftWrongShare * 100).rounded()))% of them wrong "
            + "(\(p.sftEpochs) epochs, lr \(p.sftLearningRate))")
        var sft = TrainingParameters()
        sft.modelDirectory = initDirectory.path
        sft.dataFile = dataDirectory.appendingPathComponent(DemoData.sftFileName).path
        sft.outputDirectory = sftDirectory.path
        sft.loss.kind = .sft
        sft.learningRate = p.sftLearningRate
        sft.warmupRatio = 0.05
        sft.batchPairs = sftBatch
        sft.epochs = p.sftEpochs
        sft.seed = p.seed
        sft.maxLength = 32
        sft.maxPromptLength = 16
        sft.logEvery = 25
        _ = try train(sft, stage: "sft")
        let elapsed = clock.now - sftStart
        let sftModel = sftDirectory.appendingPathComponent("final")
        let heldOutFile = dataDirectory.appendingPathComponent(DemoData.heldOutFileName)
        let sftScores = try DemoEvaluation.evaluate(modelDirectory: sftModel.path, heldOutPairsFile: heldOutFile.path)
        message("SFT model: held-out task accuracy \(percent(sftScores.heldOutAccuracy)), "
            + "training-prompt accuracy \(percent(sftScores.trainAccuracy))")
        return Base(dataDirectory: dataDirectory, dpoFile: dataDirectory.appendingPathComponent(DemoData.dpoFileName),
                    heldOutFile: heldOutFile, sftModel: sftModel, sftScores: sftScores,
                    sftSeconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18)
    }

    /// Training parameters of a preference stage from the SFT model on the DPO pairs (loss settings left to the caller).
    public func preferenceStage(base: Base, outputDirectory: URL) throws -> TrainingParameters {
        var t = TrainingParameters()
        t.modelDirectory = base.sftModel.path
        t.dataFile = base.dpoFile.path
        t.evalDataFile = base.heldOutFile.path
        t.outputDirectory = outputDirectory.path
        t.learningRate = parameters.dpoLearningRate
        t.batchPairs = try DemoParameters.perRankBatch(global: parameters.dpoGlobalBatch, worldSize: communicator.size)
        t.epochs = parameters.dpoEpochs
        t.seed = parameters.seed
        t.maxLength = 32
        t.maxPromptLength = 16
        t.logEvery = 5
        t.evalEvery = 25
        return t
    }

    /// Runs one trainer on this demo's communicator, forwarding its messages and progress.
    public func train(_ parameters: TrainingParameters, stage: String) throws -> TrainingSummary {
        try DPOTrainer(parameters: parameters, communicator: communicator).run { [weak self] event in
            switch event {
            case .message(let text): self?.onMessage?("  \(text)")
            case .progress(let snapshot): self?.onProgress?(stage, snapshot)
            case .startup: break
            }
            return .more
        }
    }

    /// Every rank learns whether rank 0 failed; rank 0 rethrows its error.
    private func agree(_ failure: Error?) throws {
        let anyFailed = communicator.size > 1 ? communicator.anyRank(failure != nil) : failure != nil
        if let failure { throw failure }
        if anyFailed { throw DemoError.output("rank 0 could not prepare \(parameters.outputDirectory)") }
    }

    func percent(_ value: Double) -> String { String(format: "%.1f%%", value * 100) }

    /// A missing or empty directory, or one an earlier demo wrote (its stage directories are removed).
    static func prepareOutputDirectory(_ url: URL) throws {
        let manager = FileManager.default
        var isDirectory: ObjCBool = false
        if manager.fileExists(atPath: url.path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { throw DemoError.output("\(url.path) is a file; choose another --out") }
            let contents = (try? manager.contentsOfDirectory(atPath: url.path)) ?? []
            if !contents.isEmpty {
                guard contents.contains(markerFileName) || contents.contains(".dpo-demo") else {
                    throw DemoError.output("\(url.path) is not empty and was not written by dpo demo; choose another --out")
                }
                for name in contents { try manager.removeItem(at: url.appendingPathComponent(name)) }
            }
        }
        do {
            try manager.createDirectory(at: url, withIntermediateDirectories: true)
            try Data().write(to: url.appendingPathComponent(".dpo-demo"))
        } catch { throw DemoError.output("cannot create \(url.path): \(error.localizedDescription)") }
    }
}

extension DemoParameters {
    /// One line per stage's settings, for the report.
    var settingsDescription: [String: String] {
        [
            "model": "hidden \(config.hiddenSize), \(config.numHiddenLayers) layers, \(config.numAttentionHeads)/\(config.numKeyValueHeads) heads, vocab \(config.vocabSize)",
            "sft": "\(sftExamples) examples, \(Int((sftWrongShare * 100).rounded()))% wrong, \(sftEpochs) epochs, lr \(sftLearningRate), global batch \(sftGlobalBatch)",
            "dpo": "\(dpoPairs) pairs, \(dpoEpochs) epochs, lr \(dpoLearningRate), beta \(beta), rpo_alpha \(rpoAlpha), global batch \(dpoGlobalBatch)",
            "held_out": "\(DemoTask.arithmetic.heldOutPromptCount) prompts for the task accuracy, \(heldOutPairs) pairs for the reward accuracy",
        ]
    }
}
