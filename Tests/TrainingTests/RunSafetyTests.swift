import Distributed
import Foundation
import Llama
import TestSupport
import XCTest

@testable import DPOTools
@testable import Training

/// The ways a run could lose work or silently train something other than what was asked
/// (issue 16): two runs on one OUT, a resume on other models, a resume that mixes with an
/// abandoned continuation, a closed log pipe or a hangup, sizes beyond memory, missing plots.
final class RunSafetyTests: XCTestCase {

    // MARK: - One run per OUT (bug 1)

    /// While another process holds OUT's lock, a trainer on that OUT is refused, naming the
    /// holder's pid and host; once released, the same run goes ahead.
    func testATrainerOnALockedOutputIsRefusedNamingTheHolder() throws {
        let sandbox = try TrainerSandbox()
        let data = try sandbox.writePairs("train.jsonl", TrainerSandbox.arithmetic)
        var p = sandbox.parameters(data: data)
        p.maxSteps = 1
        let holder = try RunLock.acquire(outputDirectory: URL(fileURLWithPath: p.outputDirectory))
        XCTAssertThrowsError(try sandbox.train(p)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("is in use by another run (pid \(getpid()) on host \(ProcessInfo.processInfo.hostName), started "), text)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: p.outputDirectory + "/final"), "the refused run wrote final/")
        holder.release()
        XCTAssertEqual(try sandbox.train(p).0.finalStep, 1)
    }

    /// The real binary: a second `dpo train` on a running one's OUT is refused with the first
    /// one's pid; SIGHUP (a dropped ssh session) then checkpoints and exits 75 like SIGTERM;
    /// the lock dies with the process, so `--resume auto` continues at once.
    func testASecondTrainerIsRefusedAndAHangupCheckpointsAndReleasesTheLock() throws {
        let job = try TrainingJobSandbox()
        let long = job.trainArguments(out: "run", ["--max-steps", "100000", "--batch-pairs", "1"])
        var second: MPIJob.Outcome?
        var hungUp = false
        let metrics = job.out("run").appendingPathComponent("metrics.jsonl")
        let first = try MPIJob.dpo(ranks: 1, long, timeout: 60) { _, process in
            let lines = (try? String(contentsOf: metrics, encoding: .utf8))?.split(separator: "\n").count ?? 0
            guard !hungUp, lines >= 2 else { return }
            second = try? MPIJob.dpo(ranks: 1, job.trainArguments(out: "run", ["--max-steps", "2"]), timeout: 30)
            kill(process.processIdentifier, SIGHUP)
            hungUp = true
        }
        XCTAssertFalse(first.timedOut, first.output)
        let refused = try XCTUnwrap(second, "the first run never logged 2 steps:\n\(first.output)")
        XCTAssertNotEqual(refused.status, 0, "two trainers ran on one OUT:\n\(refused.output)")
        XCTAssertTrue(refused.output.contains("is in use by another run (pid "), refused.output)
        XCTAssertEqual(first.status, 75, "SIGHUP must stop like SIGTERM (checkpoint, exit 75):\n\(first.output)")
        XCTAssertTrue(first.output.contains("stopped at step "), first.output)
        let stopped = try XCTUnwrap(CheckpointStore(outputDirectory: job.out("run")).checkpointSteps().first, "no checkpoint at the stop")
        let resumed = try MPIJob.dpo(ranks: 1, job.trainArguments(out: "run", ["--max-steps", "\(stopped + 1)", "--batch-pairs", "1", "--resume", "auto"]))
        XCTAssertEqual(resumed.status, 0, "the lock outlived its process?\n\(resumed.output)")
        XCTAssertTrue(resumed.output.contains("resuming from "), resumed.output)
    }

    // MARK: - Closed log pipe (bug 7)

    /// `dpo train ... 2>&1 | head -1`: the pipe closes after one line; the run must still
    /// finish and write final/ (before: killed by SIGPIPE, status 141).
    func testAClosedLogPipeDoesNotStopTraining() throws {
        let job = try TrainingJobSandbox()
        let arguments = job.trainArguments(out: "piped", ["--max-steps", "30", "--batch-pairs", "1"])
        let command = ([try MPIJob.dpoBinary()] + arguments).map { "'\($0)'" }.joined(separator: " ")
            + " 2>&1 | head -1; exit ${PIPESTATUS[0]}"
        let outcome = try MPIJob.run("/bin/bash", ["-c", command], timeout: 60)
        XCTAssertEqual(outcome.status, 0, outcome.output)
        XCTAssertTrue(FileManager.default.fileExists(atPath: job.out("piped").appendingPathComponent("final/manifest.json").path))
    }

    // MARK: - The models a checkpoint started from (bugs 2 and 3)

    /// Resuming with another `--model` (or `--ref-model`) of the same architecture is refused,
    /// naming both; `--allow-changed-model` lets it go on with a warning.
    func testResumeWithOtherModelWeightsIsRefusedNamingBoth() throws {
        let sandbox = try TrainerSandbox()
        let data = try sandbox.writePairs("train.jsonl", TrainerSandbox.arithmetic)
        let other = sandbox.root.appendingPathComponent("other-model")
        try sandbox.makeModel(at: other, config: TrainerSandbox.tinyConfig, seed: 9)
        var p = sandbox.parameters(data: data)
        p.maxSteps = 2
        p.saveEvery = 1
        _ = try sandbox.train(p)
        let checkpoint = URL(fileURLWithPath: p.outputDirectory).appendingPathComponent("checkpoint-1").path

        var resumed = p
        resumed.resume = checkpoint
        resumed.maxSteps = 3
        resumed.modelDirectory = other.path
        XCTAssertThrowsError(try sandbox.train(resumed)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("--model \(other.path) (sha256 "), text)
            XCTAssertTrue(text.contains("(\(sandbox.modelDirectory.path), sha256 "), text)
            XCTAssertTrue(text.contains("--allow-changed-model"), text)
        }
        var swappedReference = p
        swappedReference.resume = checkpoint
        swappedReference.maxSteps = 3
        swappedReference.referenceModelDirectory = other.path
        XCTAssertThrowsError(try sandbox.train(swappedReference)) { error in
            XCTAssertTrue("\(error)".contains("the reference \(other.path) (sha256 "), "\(error)")
        }
        resumed.allowChangedModel = true
        var messages: [String] = []
        XCTAssertEqual(try sandbox.train(resumed) { $0.onMessage = { messages.append($0) } }.0.finalStep, 3)
        XCTAssertTrue(messages.contains { $0.hasPrefix("warning (--allow-changed-model): --model \(other.path)") }, "\(messages)")
    }

    /// Under MPI the reference is not broadcast: a rank whose `--model` holds other weights is
    /// refused at start, naming the rank (before: step-1 loss 0.69695 instead of ln 2, exit 0).
    func testOtherReferenceWeightsOnOneRankAreRefusedAtStart() throws {
        let job = try TrainingJobSandbox()
        let binary = try MPIJob.dpoBinary()
        for (host, seed) in [("hostA", UInt64(1)), ("hostB", UInt64(2))] {
            let directory = job.root.appendingPathComponent(host)
            try job.sandbox.makeModel(at: directory.appendingPathComponent("model"), config: TrainerSandbox.tinyConfig, seed: seed)
        }
        // The same relative --model on both ranks, run in different working directories.
        let arguments = ["train", "--model", "model", "--data", job.data.path, "--out", job.out("mixed").path,
                         "--threads", "1", "--batch-pairs", "2", "--max-steps", "2", "--log-every", "1"]
        let rank0: [String] = Array(try MPIJob.mpirunArguments(ranks: 1).dropLast()) + ["-wdir", job.root.appendingPathComponent("hostA").path, binary]
        let rank1: [String] = ["-np", "1", "-wdir", job.root.appendingPathComponent("hostB").path, binary]
        let outcome = try MPIJob.run(try MPIJob.mpirun(), rank0 + arguments + [":"] + rank1 + arguments, timeout: 30)
        XCTAssertFalse(outcome.timedOut, outcome.output)
        XCTAssertNotEqual(outcome.status, 0, "a rank trained against another reference:\n\(outcome.output)")
        XCTAssertTrue(outcome.output.contains("rank(s) 1 run a different reference weights"), outcome.output)
        XCTAssertFalse(outcome.output.contains("step 1/"), "no step may run:\n\(outcome.output)")
    }

    // MARK: - Run lineage (bug 4)

    /// Resume from checkpoint-2 of a run that went on to checkpoint-4 and final (step 6): the
    /// newer ones and their metrics lines move to OUT/abandoned-*/; the new line stopped at
    /// step 3 is what `--resume auto` then picks, and rotation keeps the new checkpoints.
    func testResumingFromAnOlderCheckpointSetsTheAbandonedContinuationAside() throws {
        let sandbox = try TrainerSandbox()
        let data = try sandbox.writePairs("train.jsonl", TrainerSandbox.arithmetic)
        var p = sandbox.parameters(data: data)
        p.batchPairs = 1
        p.maxSteps = 6
        p.saveEvery = 2
        p.keepCheckpoints = 0
        let out = URL(fileURLWithPath: p.outputDirectory)
        _ = try sandbox.train(p) { $0.makeMetricsSink = { try FanOutMetricsSink.standard(outputDirectory: $0, resumingFromStep: $1) } }
        XCTAssertEqual(CheckpointStore(outputDirectory: out).checkpointSteps().sorted(), [2, 4])

        var again = p
        again.resume = out.appendingPathComponent("checkpoint-2").path
        again.maxSteps = 8
        again.keepCheckpoints = 1
        var messages: [String] = []
        var stepsDone = 0
        _ = try sandbox.train(again) { trainer in
            trainer.onMessage = { messages.append($0) }
            trainer.makeMetricsSink = { try FanOutMetricsSink.standard(outputDirectory: $0, resumingFromStep: $1) }
            trainer.onProgress = { stepsDone = $0.step }
            trainer.shouldStop = { stepsDone >= 3 }
        }
        let names = try FileManager.default.contentsOfDirectory(atPath: out.path)
        let aside = try XCTUnwrap(names.first { $0.hasPrefix("abandoned-") }, "nothing set aside: \(names.sorted()) \(messages)")
        let asideContents = try FileManager.default.contentsOfDirectory(atPath: out.appendingPathComponent(aside).path).sorted()
        XCTAssertEqual(asideContents, ["checkpoint-4", "final", "metrics.jsonl"])
        XCTAssertTrue(messages.contains { $0.contains("moved them and 4 metrics line(s) past step 2 to ") }, "\(messages)")
        var skipped: [String] = []
        let auto = try CheckpointStore.resolveResume("auto", outputDirectory: out, skipped: &skipped)
        XCTAssertEqual(auto?.lastPathComponent, "checkpoint-3", "auto must pick the current line's newest")
        XCTAssertEqual(CheckpointStore(outputDirectory: out).checkpointSteps(), [3], "rotation keeps the current line")
        let steps = try MetricsLog.read(out.appendingPathComponent("metrics.jsonl")).records.map(\.step)
        XCTAssertEqual(steps, [1, 2, 3])
    }

    // MARK: - Sizes beyond memory (bug 6)

    /// `dpo init --vocab-size` far beyond memory: a one-line error, no SIGABRT.
    func testInitBeyondMemoryIsAOneLineError() throws {
        let job = try TrainingJobSandbox()
        let outcome = try MPIJob.dpo(ranks: 1, ["init", "--preset", "tiny", "--vocab-size", "10000000000", "--out", job.out("huge").path])
        XCTAssertEqual(outcome.status, 1, outcome.output)
        XCTAssertTrue(outcome.output.hasPrefix("Error: invalid option: the weights of this model (vocab_size 10000000000"), outcome.output)
        XCTAssertTrue(outcome.output.contains("of memory is available; use smaller sizes"), outcome.output)
        XCTAssertEqual(outcome.output.split(separator: "\n").count, 1, outcome.output)
    }

    /// The issue's own size (25.6 GB of weights) against a stated 16 GB.
    func testMemoryCheckOfTheIssueSize() throws {
        var config = LlamaPreset.tiny.config
        config.vocabSize = 100_000_000
        XCTAssertThrowsError(try ModelInit.checkMemory(config, available: 16_000_000_000)) { error in
            XCTAssertTrue("\(error)".contains("need 51.2 GB, but only 16.0 GB of memory is available"), "\(error)")
        }
        XCTAssertNoThrow(try ModelInit.checkMemory(LlamaPreset.tiny.config, available: 16_000_000_000))
        XCTAssertNil(MemoryBudget.product([1 << 40, 1 << 40]), "overflow is caught")
    }

    // MARK: - Plots (bug 5)

    /// A finished `dpo train` leaves OUT/plots/metrics.svg and .png.
    func testTrainWritesItsPlots() throws {
        let job = try TrainingJobSandbox()
        let outcome = try MPIJob.dpo(ranks: 1, job.trainArguments(out: "plotted", ["--max-steps", "3"]))
        XCTAssertEqual(outcome.status, 0, outcome.output)
        for name in ["metrics.svg", "metrics.png"] {
            let url = job.out("plotted").appendingPathComponent("plots").appendingPathComponent(name)
            let size = (try? FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int) ?? 0
            XCTAssertGreaterThan(size ?? 0, 1000, "\(url.path) missing or empty:\n\(outcome.output)")
        }
    }

    // MARK: - Also fix

    /// `--max-steps` below the checkpoint's step: refused with both numbers (before: "training
    /// -5 step(s)" and a final/ written).
    func testMaxStepsBelowTheCheckpointIsRefused() throws {
        let sandbox = try TrainerSandbox()
        let data = try sandbox.writePairs("train.jsonl", TrainerSandbox.arithmetic)
        var p = sandbox.parameters(data: data)
        p.batchPairs = 1
        p.maxSteps = 4
        p.saveEvery = 3
        _ = try sandbox.train(p)
        var resumed = p
        resumed.resume = URL(fileURLWithPath: p.outputDirectory).appendingPathComponent("checkpoint-3").path
        resumed.maxSteps = 2
        XCTAssertThrowsError(try sandbox.train(resumed)) { error in
            XCTAssertTrue("\(error)".contains("--max-steps 2 is below step 3 of "), "\(error)")
        }
    }

    /// Resume with --beta and --lr changed: refused for --beta (another objective), listing
    /// both; with --allow-changed-config it goes on and says what changed. --lr alone is listed only.
    func testResumeWithChangedTrainingOptionsListsThemAndRefusesTheObjective() throws {
        let sandbox = try TrainerSandbox()
        let data = try sandbox.writePairs("train.jsonl", TrainerSandbox.arithmetic)
        var p = sandbox.parameters(data: data)
        p.batchPairs = 1
        p.maxSteps = 2
        p.saveEvery = 1
        _ = try sandbox.train(p)
        var resumed = p
        resumed.resume = URL(fileURLWithPath: p.outputDirectory).appendingPathComponent("checkpoint-1").path
        resumed.maxSteps = 3
        resumed.loss.beta = 0.5
        resumed.learningRate = 0.002
        XCTAssertThrowsError(try sandbox.train(resumed)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("changed training options: --beta 0.1 -> 0.5, --lr "), text)
            XCTAssertTrue(text.contains("; --beta would make the continuation a different run"), text)
        }
        var onlyRate = resumed
        onlyRate.loss.beta = p.loss.beta
        var messages: [String] = []
        XCTAssertEqual(try sandbox.train(onlyRate) { $0.onMessage = { messages.append($0) } }.0.finalStep, 3)
        XCTAssertTrue(messages.contains { $0.hasPrefix("resuming with changed training options: --lr ") && $0.hasSuffix("-> 0.002") }, "\(messages)")
    }

    /// A stop requested before the first step (Ctrl-C while loading) ends the run without a
    /// step and without a checkpoint (before: one step ran and checkpoint-1 was written).
    func testAStopBeforeTheFirstStepWritesNothing() throws {
        let sandbox = try TrainerSandbox()
        let data = try sandbox.writePairs("train.jsonl", TrainerSandbox.arithmetic)
        var p = sandbox.parameters(data: data)
        p.maxSteps = 3
        let (summary, sink) = try sandbox.train(p) { $0.shouldStop = { true } }
        XCTAssertTrue(summary.stoppedBySignal)
        XCTAssertEqual(summary.finalStep, 0)
        XCTAssertNil(summary.savedDirectory)
        XCTAssertTrue(sink.records.isEmpty)
        XCTAssertEqual(CheckpointStore(outputDirectory: URL(fileURLWithPath: p.outputDirectory)).checkpointSteps(), [])
    }

    /// The real binary, Ctrl-C (SIGINT) or SIGTERM while it loads (held there by a start-up
    /// delay fault): it ends at once by the signal (shell status 130 / 143), as before, and now
    /// says so in one line on standard error (before: nothing, the shell's status alone), and
    /// OUT was not even created.
    func testAStopSignalDuringStartUpSaysWhatWasInterruptedAndThatNothingWasWritten() throws {
        let job = try TrainingJobSandbox()
        for (signal, name) in [(SIGINT, "SIGINT (Ctrl-C)"), (SIGTERM, "SIGTERM")] {
            let out = "startup-\(signal)"
            let run = try DPORun.run(job.trainArguments(out: out, ["--max-steps", "2"]),
                                     extraEnvironment: [FaultInjection.environmentVariable: "delay:step=0:ms=60000"],
                                     sending: signal, whenStandardErrorContains: "start-up held for 60000 ms")
            XCTAssertEqual(run.signal, signal, "\(name): ended by the signal (shell status \(128 + signal)):\n\(run.standardError)")
            let lines = run.standardError.split(separator: "\n").filter { $0.hasPrefix("stopped by ") }
            XCTAssertEqual(lines, ["stopped by \(name) during start-up (loading the model and data, before the first step): "
                                   + "nothing was written; run the same command to start again"], run.standardError)
            XCTAssertFalse(FileManager.default.fileExists(atPath: job.out(out).path), "\(name): OUT was created")
        }
    }

    /// Every step skipped (non-finite gradients, under --max-skipped-steps): an error, no final/
    /// (before: exit 0 with a final/ identical to the starting model).
    func testARunThatSkippedEveryStepWritesNoFinal() throws {
        let sandbox = try TrainerSandbox()
        let data = try sandbox.writePairs("train.jsonl", TrainerSandbox.arithmetic)
        var p = sandbox.parameters(data: data)
        p.maxSteps = 3
        p.maxSkippedSteps = 10
        XCTAssertThrowsError(try sandbox.train(p) { $0.gradientHook = { _, gradients in gradients[0] = .nan } }) { error in
            XCTAssertTrue("\(error)".contains("all 3 step(s) of this run were skipped"), "\(error)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: p.outputDirectory + "/final"))
        XCTAssertThrowsError(try FinalModelCheck.check(master: [1, .infinity], stepsRun: 2, skippedSteps: 0)) { error in
            XCTAssertTrue("\(error)".contains("weight 1 is inf"), "\(error)")
        }
        XCTAssertNoThrow(try FinalModelCheck.check(master: [1, 2], stepsRun: 2, skippedSteps: 1))
    }

    /// A --precompute-ref cache whose values were edited is not trusted: it is recomputed.
    func testAnEditedReferenceCacheIsRecomputed() throws {
        let sandbox = try TrainerSandbox()
        let data = try sandbox.writePairs("train.jsonl", TrainerSandbox.arithmetic)
        var p = sandbox.parameters(data: data)
        p.maxSteps = 1
        p.precomputeReference = true
        _ = try sandbox.train(p)
        let cacheDirectory = URL(fileURLWithPath: p.outputDirectory).appendingPathComponent(ReferenceLogpsCache.directoryName)
        let cache = cacheDirectory.appendingPathComponent(try XCTUnwrap(FileManager.default.contentsOfDirectory(atPath: cacheDirectory.path).first))
        // Zero the last float (the file ends with the values): same size, same header.
        var bytes = try Data(contentsOf: cache)
        for i in bytes.count - 4..<bytes.count { bytes[i] = 0 }
        try bytes.write(to: cache)
        var resumed = p
        resumed.resume = "auto"
        resumed.maxSteps = 2
        var messages: [String] = []
        _ = try sandbox.train(resumed) { $0.onMessage = { messages.append($0) } }
        XCTAssertFalse(messages.contains { $0.contains("reusing") }, "an edited cache was trusted: \(messages)")
        XCTAssertTrue(messages.contains { $0.contains("does not match its checksum") }, "\(messages)")
    }

    /// A torn last line of metrics.jsonl (a write cut by a crash) is dropped with a message
    /// on resume (before: the resume was refused), and `dpo plot`'s reader skips it too.
    func testATornLastMetricsLineIsDroppedOnResume() throws {
        let sandbox = try TrainerSandbox()
        let data = try sandbox.writePairs("train.jsonl", TrainerSandbox.arithmetic)
        var p = sandbox.parameters(data: data)
        p.batchPairs = 1
        p.maxSteps = 2
        p.saveEvery = 1
        let standardSink: (TrainerConfiguration) -> Void = { $0.makeMetricsSink = { try FanOutMetricsSink.standard(outputDirectory: $0, resumingFromStep: $1) } }
        _ = try sandbox.train(p, configure: standardSink)
        let metrics = URL(fileURLWithPath: p.outputDirectory).appendingPathComponent("metrics.jsonl")
        let handle = try FileHandle(forWritingTo: metrics)
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("{\"step\": 3, \"loss\": 0.69".utf8))
        try handle.close()
        let log = try MetricsLog.read(metrics)
        XCTAssertEqual(log.records.map(\.step), [1, 2])
        XCTAssertEqual(log.notes.count, 1)

        var resumed = p
        resumed.resume = "auto"
        resumed.maxSteps = 3
        var messages: [String] = []
        _ = try sandbox.train(resumed) { standardSink($0); $0.onMessage = { messages.append($0) } }
        XCTAssertTrue(messages.contains { $0.contains("dropped its torn last line") }, "\(messages)")
        XCTAssertEqual(try MetricsLog.read(metrics).records.map(\.step), [1, 2, 3])
    }

    /// `dpo demo-data --out` over an existing file: refused without --force, as `init` does.
    func testDemoDataDoesNotOverwriteWithoutForce() throws {
        let job = try TrainingJobSandbox()
        let target = job.out("pairs.jsonl")
        try Data("keep me\n".utf8).write(to: target)
        let refused = try MPIJob.dpo(ranks: 1, ["demo-data", "--n", "4", "--out", target.path])
        XCTAssertNotEqual(refused.status, 0, refused.output)
        XCTAssertTrue(refused.output.contains("\(target.path) already exists; choose another --out or pass --force"), refused.output)
        XCTAssertEqual(try String(contentsOf: target, encoding: .utf8), "keep me\n")
        XCTAssertEqual(try MPIJob.dpo(ranks: 1, ["demo-data", "--n", "4", "--out", target.path, "--force"]).status, 0)
        XCTAssertEqual(try String(contentsOf: target, encoding: .utf8).split(separator: "\n").count, 4)
    }

    /// `dpo plot` of an empty metrics file: non-zero with a message, no empty figure.
    func testPlotOfAnEmptyMetricsFileFails() throws {
        let job = try TrainingJobSandbox()
        let empty = job.out("metrics.jsonl")
        try Data().write(to: empty)
        let outcome = try MPIJob.dpo(ranks: 1, ["plot", "--metrics", empty.path, "--out", job.out("plot.svg").path])
        XCTAssertNotEqual(outcome.status, 0, outcome.output)
        XCTAssertTrue(outcome.output.contains("\(empty.path) holds no metrics"), outcome.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: job.out("plot.svg").path))
    }

    /// Pairs whose chosen equals the rejected are counted and dropped at start (default), or
    /// kept and reported with --skip-identical false; a file of nothing but such pairs is refused.
    func testIdenticalChosenAndRejectedAreCountedAndDropped() throws {
        let sandbox = try TrainerSandbox()
        let data = try sandbox.writePairs("train.jsonl", TrainerSandbox.arithmetic + [("9+9=", "18", "18")])
        var p = sandbox.parameters(data: data)
        p.maxSteps = 1
        var messages: [String] = []
        _ = try sandbox.train(p) { $0.onMessage = { messages.append($0) } }
        XCTAssertTrue(messages.contains { $0.contains("1 of 5 pair(s) of --data \(data.path) have chosen identical to rejected (record(s) 5)") && $0.hasSuffix(": dropped (pass --skip-identical false to keep them)") }, "\(messages)")
        var kept = p
        kept.outputDirectory += "-kept"
        kept.skipIdentical = false
        messages = []
        _ = try sandbox.train(kept) { $0.onMessage = { messages.append($0) } }
        XCTAssertTrue(messages.contains { $0.hasSuffix("; kept (--skip-identical false)") }, "\(messages)")
        var only = p
        only.outputDirectory += "-only"
        only.dataFile = try sandbox.writePairs("same.jsonl", [("1+1=", "2", "2")]).path
        XCTAssertThrowsError(try sandbox.train(only)) { XCTAssertTrue("\($0)".contains("no other pair is left"), "\($0)") }
    }

    /// A corrupt manifest in final/ and a manifest listing no files are incomplete checkpoints,
    /// each reported with a "skipping" line (before: the first was skipped silently, the second
    /// counted as complete).
    func testCorruptOrEmptyManifestsAreReportedIncomplete() throws {
        let sandbox = try TrainerSandbox()
        let out = sandbox.root.appendingPathComponent("out")
        let store = CheckpointStore(outputDirectory: out)
        for name in ["checkpoint-1", "checkpoint-2", "final"] {
            try store.save(name: name, step: name == "final" ? 3 : Int(name.dropFirst(11))!) { directory in
                try Data("weights".utf8).write(to: directory.appendingPathComponent("model.safetensors"))
            }
        }
        try Data("{not json".utf8).write(to: out.appendingPathComponent("final/manifest.json"))
        try Data(#"{"format_version": 1, "step": 2, "files": {}}"#.utf8).write(to: out.appendingPathComponent("checkpoint-2/manifest.json"))
        var skipped: [String] = []
        XCTAssertEqual(store.newestComplete(skipped: &skipped)?.url.lastPathComponent, "checkpoint-1")
        XCTAssertEqual(skipped.count, 2, "\(skipped)")
        XCTAssertTrue(skipped.contains { $0.hasPrefix("skipping \(out.path)/final: ") && $0.contains("is not a valid manifest") }, "\(skipped)")
        XCTAssertTrue(skipped.contains { $0.hasPrefix("skipping \(out.path)/checkpoint-2: ") && $0.contains("lists no files") }, "\(skipped)")
    }
}
