import Distributed
import Foundation
import Preference
import TestSupport
import XCTest

@testable import Training

/// Faults under MPI with the real trainer (`dpo train` on 2 ranks): a rank killed, a rank
/// that throws, a stop signal to the launcher, NaN on one rank, weights that drift apart,
/// a different configuration on one rank, an unwritable or full output directory.
/// Faults are injected through DPO_FAULT_INJECT (see FaultInjection.swift). Every job must
/// end by itself, by the fault's own path (mpirun noticing a death, MPI_Abort, a refusal):
/// the only slower path, the collective watchdog, waits 300 s (`--collective-timeout`'s
/// default), beyond `MPIJob.hangLimit` (120 s), where the test kills the job and fails.
/// No duration is asserted: the jobs take 2-6 s, and a wall-clock limit flakes under load.
final class FaultToleranceTests: XCTestCase {
    /// A failed job: ended by itself, not by the collective watchdog, non-zero status, every
    /// `expected` text in its output.
    func assertFailed(_ outcome: MPIJob.Outcome, saying expected: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertFalse(outcome.timedOut, "the job hung:\n\(outcome.output)", file: file, line: line)
        XCTAssertNotEqual(outcome.status, CollectiveWatchdog.exitCode, "ended by the watchdog, not by the fault's own path:\n\(outcome.output)",
                          file: file, line: line)
        XCTAssertNotEqual(outcome.status, 0, "the job should have failed:\n\(outcome.output)", file: file, line: line)
        for text in expected {
            XCTAssertTrue(outcome.output.contains(text), "missing '\(text)' in:\n\(outcome.output)", file: file, line: line)
        }
    }

    /// The checkpoints left in OUT are complete (their manifests verify) and the newest is at `step`.
    func assertNewestCheckpoint(_ out: URL, step: Int, file: StaticString = #filePath, line: UInt = #line) throws {
        let store = CheckpointStore(outputDirectory: out)
        var skipped: [String] = []
        let newest = store.newestComplete(skipped: &skipped)
        XCTAssertEqual(skipped, [], file: file, line: line)
        XCTAssertEqual(newest?.manifest.step, step, file: file, line: line)
        if let newest { XCTAssertNoThrow(try CheckpointStore.verify(newest.url), file: file, line: line) }
        let names = try FileManager.default.contentsOfDirectory(atPath: out.path)
        XCTAssertFalse(names.contains { $0.hasPrefix(".tmp-") }, "a torn save was left: \(names)", file: file, line: line)
    }

    let saving = ["--batch-pairs", "2", "--max-steps", "8", "--save-every", "1", "--lr", "1e-3"]

    /// DPO_FAULT_INJECT: the syntax the tests rely on, and a typo is an error (never a test that injects nothing).
    func testFaultInjectionSyntax() throws {
        let faults = try FaultInjection.parse("throw:rank=1:step=3; delay:ms=50;nan")
        XCTAssertEqual(faults.faults, [
            .init(kind: .throwError, rank: 1, step: 3), .init(kind: .delay, milliseconds: 50), .init(kind: .nan),
        ])
        XCTAssertTrue(faults.contains(.throwError, rank: 1, step: 3))
        XCTAssertFalse(faults.contains(.throwError, rank: 0, step: 3))
        XCTAssertFalse(faults.contains(.throwError, rank: 1, step: 2))
        XCTAssertTrue(faults.contains(.nan, rank: 0, step: 7), "no rank or step: every rank, every step")
        XCTAssertNil(try FaultInjection.fromEnvironment([:]))
        for (text, expected) in [("explode:rank=1", "unknown fault 'explode'"), ("kill:rank=x", "not key=number"), ("kill:when=3", "unknown key 'when'")] {
            XCTAssertThrowsError(try FaultInjection.parse(text)) { XCTAssertTrue("\($0)".contains(expected), "\(text): \($0)") }
        }
    }

    // MARK: - Ranks that die or fail

    /// SIGKILL of rank 1 before step 4: mpirun ends the job, names rank 1 and the signal;
    /// checkpoint-3 (saved before rank 1 died: every rank waits for rank 0's save) is complete.
    func testKilledRankEndsTheJobAndKeepsTheLastCheckpoint() throws {
        let job = try TrainingJobSandbox()
        let outcome = try job.train(ranks: 2, out: "killed", saving, faults: "kill:rank=1:step=4")
        assertFailed(outcome, saying: ["rank 1", "signal 9"])
        try assertNewestCheckpoint(job.out("killed"), step: 3)
        // And the run continues from it.
        let resumed = try job.trainSucceeding(ranks: 2, out: "killed", saving + ["--resume", "auto"])
        XCTAssertTrue(resumed.output.contains("at step 3"), resumed.output)
    }

    /// A rank that throws at step 3: every rank ends, the message names rank 1 and the error.
    func testThrowingRankEndsTheJobWithItsRankAndError() throws {
        let job = try TrainingJobSandbox()
        let outcome = try job.train(ranks: 2, out: "threw", saving, faults: "throw:rank=1:step=3")
        assertFailed(outcome, saying: ["rank 1: injected fault (DPO_FAULT_INJECT): rank 1 throws at step 3"])
        try assertNewestCheckpoint(job.out("threw"), step: 2)
    }

    /// No rank can run out of data before another: the sampler pads every epoch to a
    /// multiple of the ranks, so all ranks get the same number of non-empty batches, for
    /// every data size, rank count and batch size (the trainer's step count comes from it).
    func testNoRankRunsOutOfDataBeforeAnother() throws {
        for examples in 1...23 {
            for worldSize in 1...5 {
                for batch in 1...4 {
                    let plans = try (0..<worldSize).map {
                        try BatchPlan(exampleCount: examples, batchSize: batch, worldSize: worldSize, rank: $0, seed: 7)
                    }
                    for epoch in 0..<2 {
                        let batches = plans.map { $0.batches(epoch: epoch) }
                        let label = "\(examples) examples, \(worldSize) ranks, batch \(batch), epoch \(epoch)"
                        XCTAssertEqual(Set(plans.map(\.stepsPerEpoch)).count, 1, label)
                        XCTAssertTrue(batches.allSatisfy { $0.count == plans[0].stepsPerEpoch && $0.allSatisfy { !$0.isEmpty } }, label)
                        XCTAssertEqual(Set(batches.joined().joined()), Set(0..<examples), "\(label): every example is seen")
                    }
                }
            }
        }
    }

    // MARK: - Killed while saving

    /// The real trainer, saving every step, SIGKILLed at random moments 6 times on one OUT
    /// (each run resumes the last): after every kill only complete checkpoints carry a
    /// checkpoint name once interrupted saves are recovered, and the next `--resume auto`
    /// continues from the newest. Then a corrupted newest checkpoint is skipped with a
    /// message and the run resumes from the one before.
    func testTrainerKilledAtRandomMomentsResumesFromTheNewestCompleteCheckpoint() throws {
        let job = try TrainingJobSandbox()
        let out = job.out("killed")
        let options = ["--optimizer", "sgd", "--batch-pairs", "4", "--max-steps", "100000", "--save-every", "1", "--keep-checkpoints", "2",
                       "--resume", "auto"]
        var random = SystemRandomNumberGenerator()
        var lastStep = 0
        var killsDuringSave = 0
        for trial in 0..<6 {
            // Kill once this run has saved twice (it is past start-up), after a further random 0-150 ms.
            var killAt: Date?
            let outcome = try MPIJob.dpo(ranks: 1, job.trainArguments(out: "killed", options)) { output, process in
                if killAt == nil && output.components(separatedBy: "saved ").count > 2 {
                    killAt = Date().addingTimeInterval(Double.random(in: 0...0.15, using: &random))
                }
                if let killAt, Date() >= killAt { kill(process.processIdentifier, SIGKILL) }
            }
            XCTAssertEqual(outcome.status, SIGKILL, "trial \(trial): killed, not finished:\n\(outcome.output)")
            if trial > 0 { XCTAssertTrue(outcome.output.contains("at step \(lastStep)"), "trial \(trial): resumed at \(lastStep):\n\(outcome.output)") }
            let names = try FileManager.default.contentsOfDirectory(atPath: out.path)
            if names.contains(where: { $0.hasPrefix(".tmp-") || $0.hasPrefix(".old-") }) { killsDuringSave += 1 }
            let store = CheckpointStore(outputDirectory: out)
            store.recoverInterruptedSaves()
            for step in store.checkpointSteps() {
                XCTAssertNoThrow(try CheckpointStore.verify(out.appendingPathComponent(CheckpointStore.checkpointName(step: step))), "trial \(trial)")
            }
            var skipped: [String] = []
            let newest = try XCTUnwrap(store.newestComplete(skipped: &skipped), "trial \(trial)")
            XCTAssertEqual(skipped, [], "trial \(trial)")
            XCTAssertGreaterThan(newest.manifest.step, lastStep, "trial \(trial) made progress")
            lastStep = newest.manifest.step
        }
        print("kills that landed inside a save (a temporary left behind): \(killsDuringSave) of 6")

        // Corrupt the newest checkpoint's weights: skipped with a message, the one before is used.
        let steps = CheckpointStore(outputDirectory: out).checkpointSteps().sorted()
        let newestURL = out.appendingPathComponent(CheckpointStore.checkpointName(step: steps.last!))
        let model = newestURL.appendingPathComponent("model.safetensors")
        var bytes = try Data(contentsOf: model)
        bytes[bytes.count - 1] ^= 0xFF
        try bytes.write(to: model)
        let resumed = try job.trainStopping(ranks: 1, out: "killed", options, faults: "stop:step=\(steps[steps.count - 2] + 1)")
        XCTAssertTrue(resumed.output.contains("skipping \(newestURL.path)"), resumed.output)
        XCTAssertTrue(resumed.output.contains("at step \(steps[steps.count - 2])"), resumed.output)
    }

    // MARK: - Stop signal

    /// SIGTERM (what Slurm sends before a time limit) or SIGINT (Ctrl-C) to launch/local.sh
    /// mid-run: the ranks finish the step in progress, rank 0 writes checkpoint-<step>, the
    /// job exits 0; `--resume auto` continues to the end.
    func testSigtermToTheLauncherCheckpointsAndResumes() throws {
        try stopTheLauncher(with: SIGTERM)
    }

    func testSigintToTheLauncherCheckpointsAndResumes() throws {
        try stopTheLauncher(with: SIGINT)
    }

    func stopTheLauncher(with signal: Int32) throws {
        guard let root = MPIJob.packageRoot else { return XCTFail("package root not found above \(MPIJob.buildDirectory.path)") }
        let job = try TrainingJobSandbox()
        var environment = MPIJob.environment
        environment["DPO_BIN"] = try MPIJob.dpoBinary()
        // Slow steps (300 ms) so the signal lands mid-run.
        environment[FaultInjection.environmentVariable] = "delay:ms=300"
        let arguments = job.trainArguments(out: "signal", ["--batch-pairs", "2", "--max-steps", "40", "--lr", "1e-3"])
        var signalled = false
        let outcome = try MPIJob.run("/bin/bash", [root.appendingPathComponent("launch/local.sh").path, "-n", "2", "--threads", "1", "--"]
                                     + arguments, environment: environment) { output, process in
            if !signalled && output.contains("step 2/40") {
                signalled = true
                kill(process.processIdentifier, signal)
            }
        }
        XCTAssertTrue(outcome.output.contains("launch: stop requested"), outcome.output)
        XCTAssertTrue(signalled, "the job never reached step 2:\n\(outcome.output)")
        XCTAssertFalse(outcome.timedOut, outcome.output)
        XCTAssertEqual(outcome.status, 75, "a stop with a checkpoint exits 75 (EX_TEMPFAIL):\n\(outcome.output)")
        let stoppedAt = outcome.output.components(separatedBy: "stopped at step ").dropFirst().first?.prefix { $0.isNumber }
        let step = try XCTUnwrap(stoppedAt.flatMap { Int($0) }, "no 'stopped at step' in:\n\(outcome.output)")
        XCTAssertLessThan(step, 40)
        try assertNewestCheckpoint(job.out("signal"), step: step)
        XCTAssertFalse(FileManager.default.fileExists(atPath: job.out("signal").appendingPathComponent("final").path))

        let resumed = try job.trainSucceeding(ranks: 2, out: "signal", ["--batch-pairs", "2", "--max-steps", "40", "--lr", "1e-3", "--resume", "auto"])
        XCTAssertTrue(resumed.output.contains("at step \(step)"), resumed.output)
        XCTAssertEqual(try CheckpointStore.verify(job.out("signal").appendingPathComponent("final")).step, 40)
        XCTAssertEqual(try job.metrics("signal").map { Int($0["step"]!) }, Array(1...40), "metrics.jsonl continues without a gap")
    }

    // MARK: - Numerical faults on one rank

    /// A NaN in rank 1's averaged gradients only (rank 0's are finite): both ranks skip the
    /// step (rank 0 reports it; the final checksum comparison proves rank 1 did the same),
    /// and the weights equal a run whose step 2 changed nothing.
    func testNaNOnOneRankIsSkippedByEveryRank() throws {
        let job = try TrainingJobSandbox()
        let common = ["--optimizer", "sgd", "--lr", "0.5", "--schedule", "constant", "--batch-pairs", "2", "--max-steps", "4",
                      "--max-grad-norm", "0"]
        let outcome = try job.trainSucceeding(ranks: 2, out: "nan", common, faults: "nan:rank=1:step=2")
        XCTAssertTrue(outcome.output.contains("step 2: non-finite loss or gradients, update skipped"), outcome.output)
        XCTAssertTrue(outcome.output.contains("(1 skipped)"), outcome.output)
        XCTAssertEqual(try job.metrics("nan").map { Int($0["step"]!) }, [1, 3, 4], "the skipped step logs nothing")
        try job.trainSucceeding(ranks: 2, out: "zero", common, faults: "zero:step=2")
        let weights = try job.masterWeights("nan")
        XCTAssertTrue(weights.allSatisfy(\.isFinite))
        XCTAssertEqual(weights, try job.masterWeights("zero"), "the skipped step applied nothing")
    }

    /// fp16 on 2 ranks: an overflow on rank 1 halves the loss scale on every rank.
    func testFP16OverflowOnOneRankBacksOffTheLossScaleEverywhere() throws {
        let job = try TrainingJobSandbox()
        let outcome = try job.trainSucceeding(ranks: 2, out: "fp16", ["--precision", "fp16", "--batch-pairs", "2", "--max-steps", "3"],
                                              faults: "nan:rank=1:step=1")
        XCTAssertTrue(outcome.output.contains("step 1: non-finite loss or gradients, update skipped (loss scale now 32768"), outcome.output)
        XCTAssertEqual(try job.series("loss_scale", "fp16"), [32768, 32768])
    }

    /// NaN on rank 1 at every step: more than --max-skipped-steps in a row stops the job
    /// with a message and no final model.
    func testPersistentNaNOnOneRankStopsAfterMaxSkippedSteps() throws {
        let job = try TrainingJobSandbox()
        let outcome = try job.train(ranks: 2, out: "always", ["--batch-pairs", "2", "--max-steps", "8", "--max-skipped-steps", "3"],
                                    faults: "nan:rank=1")
        assertFailed(outcome, saying: ["3 steps in a row had a non-finite loss or gradients (--max-skipped-steps 3); stopping at step 3"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: job.out("always").appendingPathComponent("final").path))
    }

    // MARK: - Consistency

    /// Rank 1's weights drift by one ulp after step 2: the checksum comparison of --check-every 1
    /// stops the job at step 2, naming rank 1; checkpoint-1 stays complete.
    func testDivergedWeightsOnOneRankStopTheJob() throws {
        let job = try TrainingJobSandbox()
        let outcome = try job.train(ranks: 2, out: "drift", saving + ["--check-every", "1"], faults: "diverge:rank=1:step=2")
        assertFailed(outcome, saying: ["weights differ between ranks after step 2: rank(s) 1 do not match rank 0"])
        try assertNewestCheckpoint(job.out("drift"), step: 1)
    }

    /// One rank started with another --beta, or another build of dpo: refused at start, before any step, naming the rank.
    func testDifferentConfigurationOnOneRankIsRefusedAtStart() throws {
        let job = try TrainingJobSandbox()
        let binary = try MPIJob.dpoBinary()
        let arguments = job.trainArguments(out: "mixed", ["--batch-pairs", "2", "--max-steps", "2"])
        // MPMD: rank 0 and rank 1 are two programs with their own arguments.
        let rank0 = try MPIJob.mpirunArguments(ranks: 1) + arguments + ["--beta", "0.1"]
        let rank1 = ["-np", "1", binary] + arguments + ["--beta", "0.2", "--lr", "2e-6"]
        let outcome = try MPIJob.run(try MPIJob.mpirun(), rank0 + [":"] + rank1)
        // Every differing option is named (issue 16: not only "rebuild and copy it").
        assertFailed(outcome, saying: ["rank(s) 1 run a different configuration (--beta, --lr) than rank 0; every rank must be started with the same options"])
        XCTAssertFalse(outcome.output.contains("step 1/2"), "no step may run:\n\(outcome.output)")

        // Another build on rank 1 (a copy of dpo with one byte appended still runs): refused too.
        let other = job.root.appendingPathComponent("dpo-other")
        var bytes = try Data(contentsOf: URL(fileURLWithPath: binary))
        bytes.append(0)
        try bytes.write(to: other)
        chmod(other.path, 0o755)
        let sameOptions = arguments + ["--beta", "0.1"]
        let mixed = try MPIJob.run(try MPIJob.mpirun(), try MPIJob.mpirunArguments(ranks: 1) + sameOptions + [":", "-np", "1", other.path] + sameOptions)
        assertFailed(mixed, saying: ["rank(s) 1 run a different binary than rank 0"])
    }

    /// Rank 1 reads other data under the same path (each host has its own copy, one of them
    /// stale): refused at start, naming the rank. Unchecked, the rank with fewer pairs would
    /// run fewer steps per epoch and leave the others waiting in a collective.
    func testDifferentDataOnOneRankIsRefusedAtStart() throws {
        let job = try TrainingJobSandbox()
        let binary = try MPIJob.dpoBinary()
        for (host, count) in [("hostA", 8), ("hostB", 4)] {
            let directory = job.root.appendingPathComponent(host)
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            try FileManager.default.copyItem(at: job.data, to: directory.appendingPathComponent("train.jsonl"))
            let lines = try String(contentsOf: job.data, encoding: .utf8).split(separator: "\n").prefix(count)
            try (lines.joined(separator: "\n") + "\n").write(to: directory.appendingPathComponent("train.jsonl"), atomically: true, encoding: .utf8)
        }
        // The same relative --data on both ranks, run in different working directories.
        let arguments = ["train", "--model", job.sandbox.modelDirectory.path, "--data", "train.jsonl", "--out", job.out("mixed").path,
                         "--threads", "1", "--batch-pairs", "2", "--epochs", "2", "--log-every", "1"]
        let rank0: [String] = Array(try MPIJob.mpirunArguments(ranks: 1).dropLast()) + ["-wdir", job.root.appendingPathComponent("hostA").path, binary]
        let rank1: [String] = ["-np", "1", "-wdir", job.root.appendingPathComponent("hostB").path, binary]
        let outcome = try MPIJob.run(try MPIJob.mpirun(), rank0 + arguments + [":"] + rank1 + arguments)
        assertFailed(outcome, saying: ["rank(s) 1 run a different training data (--data as encoded) than rank 0"])
        XCTAssertFalse(outcome.output.contains("step 1/"), "no step may run:\n\(outcome.output)")
    }

    // MARK: - Output directory

    /// OUT inside a read-only place: refused before training, with the path and what to do.
    func testUnwritableOutputIsRefusedBeforeTraining() throws {
        let job = try TrainingJobSandbox()
        // A regular file where a directory should be: not writable even for root.
        let blocker = job.root.appendingPathComponent("blocker")
        try Data("x".utf8).write(to: blocker)
        let outcome = try MPIJob.dpo(ranks: 2, job.trainArguments(out: "blocker/out", ["--max-steps", "2"]))
        assertFailed(outcome, saying: ["output directory: cannot create \(blocker.path)/out: \(blocker.path) is a file, not a directory"])
        XCTAssertFalse(outcome.output.contains("step 1/2"), outcome.output)
    }

    /// A small tmpfs as OUT. Read-only, or too small for one checkpoint: refused before training. Room
    /// for a few: the save that no longer fits fails with the reason, the job exits
    /// non-zero, and every earlier checkpoint is still complete (a failed save deletes nothing).
    func testFullDiskIsRefusedUpFrontAndAFailedSaveKeepsThePreviousCheckpoint() throws {
        let job = try TrainingJobSandbox()
        let mountPoint = job.root.appendingPathComponent("disk")
        try FileManager.default.createDirectory(at: mountPoint, withIntermediateDirectories: true)

        func mount(kilobytes: Int, readOnly: Bool = false) throws -> Bool {
            let options = "size=\(kilobytes)k" + (readOnly ? ",ro" : "")
            return try MPIJob.run("/bin/mount", ["-t", "tmpfs", "-o", options, "tmpfs", mountPoint.path]).status == 0
        }
        func unmount() { _ = try? MPIJob.run("/bin/umount", [mountPoint.path]) }
        guard try mount(kilobytes: 512, readOnly: true) else {
            throw XCTSkip("cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN); the full-disk test runs in CI as root")
        }
        defer { unmount() }
        // Read-only file system: refused before training, with the reason.
        let readOnly = try MPIJob.dpo(ranks: 1, job.trainArguments(out: "disk/out", ["--max-steps", "2"]))
        assertFailed(readOnly, saying: ["cannot create \(mountPoint.path)/out: \(mountPoint.path) is not writable (Read-only file system)"])
        unmount()

        XCTAssertTrue(try mount(kilobytes: 512))
        // A checkpoint of this model needs about 1.2 MiB by the trainer's estimate (weights,
        // optimizer state, 1 MiB margin): 512 KiB (less the block of the run's own OUT/.lock)
        // is refused before any step.
        let small = try MPIJob.dpo(ranks: 1, job.trainArguments(out: "disk/out", ["--max-steps", "2"]))
        assertFailed(small, saying: ["has 508 KiB free, a checkpoint needs about 1"])
        XCTAssertFalse(small.output.contains("step 1/2"), small.output)
        unmount()

        // 1.6 MiB: passes the check; each checkpoint takes ~0.33 MiB (SGD, fp32), so the
        // fourth or fifth save runs out of space.
        XCTAssertTrue(try mount(kilobytes: 1600))
        let out = mountPoint.appendingPathComponent("out")
        let full = try MPIJob.dpo(ranks: 2, job.trainArguments(
            out: "disk/out", ["--optimizer", "sgd", "--batch-pairs", "2", "--max-steps", "20", "--save-every", "1", "--keep-checkpoints", "0"]))
        // Whichever rank ends the job first, the reason is printed (rank 1 carries rank 0's).
        assertFailed(full, saying: ["output directory:", "could not save \(out.path)/checkpoint-", "No space left on device"])
        let steps = CheckpointStore(outputDirectory: out).checkpointSteps()
        XCTAssertFalse(steps.isEmpty, full.output)
        for step in steps {
            XCTAssertNoThrow(try CheckpointStore.verify(out.appendingPathComponent(CheckpointStore.checkpointName(step: step))), "checkpoint-\(step)")
        }
        try assertNewestCheckpoint(out, step: steps.max() ?? -1)
    }
}
