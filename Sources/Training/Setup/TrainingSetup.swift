import Distributed
import Foundation
import Llama
import Preference

/// Everything before the first step, in the order it must happen: load and check the inputs
/// (nothing written yet), take OUT, pick the checkpoint to resume, plan the data, prepare OUT,
/// build the `DPOStep`, open the metrics sink. Each part reports through `TrainingEvents`.
enum TrainingSetup {
    static func prepare(
        _ parameters: TrainingParameters, communicator: Communicator, events: TrainingEvents,
        makeMetricsSink: (URL, Int?) throws -> MetricsSink
    ) throws -> PreparedRun {
        var p = parameters
        let timeline = StartupTimeline()
        if communicator.size > 1 {
            // A different binary or configuration on one rank would silently train something else.
            // One part per option (leaves of train_config.json), so a mismatch names the flags.
            let options = try JSONSerialization.jsonObject(with: TrainingCheckpoint.encodedParameters(p)) as? [String: Any] ?? [:]
            let leaves = ResumeChecks.flatten(options).sorted { $0.key < $1.key }.map { key, value in
                ("configuration: " + (ResumeChecks.flagNames[key] ?? "--" + key.replacingOccurrences(of: "_", with: "-")), value)
            }
            try communicator.verifySameRun([("binary", RunFingerprint.executable())] + leaves)
            timeline.mark("same-run check")
        }
        let inputs = try LoadedInputs.load(p, communicator: communicator, events: events, timeline: timeline) { config, train in
            try FitCheck.run(p, config: config, data: FitCheck.DataRows(train, worldSize: communicator.size),
                             communicator: communicator, events: events)
        }
        inputs.lora = try LoRASetup.resolve(&p, model: inputs.config, events: events)
        // One run per OUT (rank 0 writes it; taken once the inputs are known good): a second
        // trainer would overwrite this one's checkpoints, metrics and train_config.json.
        if communicator.rank == 0 { ShutdownSignal.setImmediateNote(StartupStopNote.afterOutput) }
        let runLock = communicator.rank == 0 ? try RunLock.acquire(outputDirectory: URL(fileURLWithPath: p.outputDirectory)) : nil
        if let warning = runLock?.warning { events.message(warning) }
        // An interrupted save is undone before any rank looks for the checkpoint to resume: a
        // final/ moved aside for its replacement is complete again (else --resume auto would
        // start fresh and overwrite it, and a fresh run would not see that OUT holds a run).
        if communicator.rank == 0 {
            for line in CheckpointStore(outputDirectory: URL(fileURLWithPath: p.outputDirectory)).recoverInterruptedSaves() { events.message(line) }
        }
        communicator.barrier()
        let restored = try ResumePoint.resolve(&p, inputs: inputs, worldSize: communicator.size, rank: communicator.rank, events: events)
        if communicator.size > 1 { try checkSameResume(restored, communicator: communicator) }
        if restored != nil { timeline.mark("resume") }
        let plan = try RunPlan(p, pairs: inputs.train, communicator: communicator, restored: restored)
        if communicator.rank == 0 { try prepareOutput(p, parameterCount: inputs.trainableCount, restored: restored, events: events) }
        timeline.mark("output directory")
        let models = try StepBuilder.build(p, inputs: inputs, restored: restored, communicator: communicator, events: events)
        timeline.mark("models and step")
        if communicator.rank == 0, restored != nil,
           let note = try MetricsLog.dropTornLastLine(of: URL(fileURLWithPath: p.outputDirectory).appendingPathComponent("metrics.jsonl")) {
            events.message(note)
        }
        // A resumed run keeps the logged lines up to its checkpoint (later ones belong to steps
        // that run again), so metrics.jsonl reads as if it never stopped.
        var sink: MetricsSink?
        if communicator.rank == 0 {
            do { sink = try makeMetricsSink(URL(fileURLWithPath: p.outputDirectory), restored == nil ? nil : models.state.globalStep) } catch {
                throw TrainingError.output("cannot open the metrics files in \(p.outputDirectory): \(error)")
            }
        }
        timeline.mark("metrics files")
        events.message(timeline.line)
        return PreparedRun(
            parameters: p, communicator: communicator, config: inputs.config, trainPairs: inputs.train, evalPairs: inputs.eval,
            paddingId: inputs.paddingId, plan: plan, state: models.state, restoredState: restored?.state, step: models.step,
            evalReference: models.evalReference, sink: sink, runLock: runLock, dataCounts: inputs.counts)
    }

    /// Every rank resumes the same checkpoint (path, step and manifest), or none. Each rank reads
    /// OUT itself: one that sees another directory (a node-local disk, a relative --out under
    /// another working directory) would start at another step and mix other steps' data into
    /// the same all-reduces, then hang at the end.
    static func checkSameResume(_ restored: ResumePoint?, communicator: Communicator) throws {
        let mine = restored.map { point -> String in
            let manifest = FileManager.default.contents(atPath: point.directory.appendingPathComponent(CheckpointStore.manifestName).path) ?? Data()
            return "\(point.directory.path) at step \(point.state.globalStep)\n\(SHA256.hex(manifest))"
        } ?? "none (a fresh start)\n"
        let all = communicator.allGather(Array(mine.utf8)).map { String(decoding: $0, as: UTF8.self) }
        guard all.contains(where: { $0 != all[0] }) else { return }
        let choices = all.enumerated().filter { $0.offset == 0 || $0.element != all[0] }.map { rank, choice in
            let place = choice.split(separator: "\n", omittingEmptySubsequences: false)
            let sameName = rank > 0 && place.first == all[0].split(separator: "\n", omittingEmptySubsequences: false).first
            return "rank \(rank) from \(place.first ?? "")" + (sameName ? " (other contents)" : "")
        }
        throw TrainingError.checkpoint(
            "the ranks would resume from different checkpoints: \(choices.joined(separator: ", ")); every rank must see the same "
                + "--out: put it on a file system all ranks share, and give it as an absolute path")
    }

    /// OUT: writable, space for a checkpoint, newer lines set aside on resume, the resolved
    /// configuration written (rank 0; interrupted saves were undone before the resume choice).
    static func prepareOutput(
        _ p: TrainingParameters, parameterCount: Int, restored: ResumePoint?, events: TrainingEvents
    ) throws {
        let outputURL = URL(fileURLWithPath: p.outputDirectory)
        let bytesPerSavedWeight = p.saveDType == .fp32 ? 4 : 2
        let checkpointBytes = parameterCount * (bytesPerSavedWeight + (p.optimizer.kind == .adamw ? 12 : 4)) + (1 << 20)
        try CheckpointStore.prepareOutputDirectory(outputURL, requiredBytes: checkpointBytes)
        if let restored {
            for line in try RunLineage.setAsideNewer(than: restored.state.globalStep, resumeDirectory: restored.directory, outputDirectory: outputURL) {
                events.message(line)
            }
        }
        do {
            try TrainingCheckpoint.encodedParameters(p).write(
                to: outputURL.appendingPathComponent(TrainingCheckpoint.configFileName), options: .atomic)
        } catch { throw TrainingError.output("cannot write train_config.json in \(outputURL.path): \(error.localizedDescription)") }
    }
}
