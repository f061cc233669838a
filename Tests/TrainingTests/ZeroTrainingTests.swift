import Foundation
import Llama
import TestSupport
import XCTest

@testable import Training

/// `--zero 1` (ZeRO stage 1) with the real trainer on 2 MPI ranks: the same weights as
/// `--zero 0`, exact resume from a sharded checkpoint, resharding onto another world size, and
/// a checkpoint missing one rank's optimizer shard treated as incomplete.
final class ZeroTrainingTests: XCTestCase {
    func shardNames(_ job: TrainingJobSandbox, _ out: String, _ checkpoint: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: job.out(out).appendingPathComponent(checkpoint).path)
            .filter { $0.hasPrefix("optimizer") }.sorted()
    }

    // MARK: - Equivalence

    /// 10 AdamW steps (fp32, clipping active) on 2 ranks: `--zero 1` ends within 1e-6
    /// (relative to the largest weight) of `--zero 0`, which itself moved the weights far more.
    func testZeroOneMatchesZeroZeroAfterTenAdamWSteps() throws {
        let job = try TrainingJobSandbox()
        let common = ["--lr", "1e-3", "--batch-pairs", "2", "--max-steps", "10", "--max-grad-norm", "0.5"]
        try job.trainSucceeding(ranks: 2, out: "plain", common + ["--zero", "0"])
        let sharded = try job.trainSucceeding(ranks: 2, out: "zero", common + ["--zero", "1"])
        XCTAssertTrue(sharded.output.contains("step 10"), sharded.output)

        let plain = try job.adamwMasterWeights("plain"), zero = try job.adamwMasterWeights("zero")
        let scale = maxAbs(plain)
        let difference = maxAbsDifference(plain, zero)
        print("zero 1 vs zero 0 after 10 steps: max|difference| / max|weight| = \(difference / scale)")
        XCTAssertLessThanOrEqual(difference, 1e-6 * scale)
        // Not vacuous: training moved the weights by much more than the tolerance.
        try job.assertTrained("zero")
        // The model files of final/ are an ordinary HF directory either way.
        for name in ["config.json", "model.safetensors", "manifest.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: job.out("zero").appendingPathComponent("final/\(name)").path), name)
        }
        XCTAssertEqual(try shardNames(job, "zero", "final"),
                       ["optimizer-shard-00000-of-00002.safetensors", "optimizer-shard-00001-of-00002.safetensors"])
        // Clipping was active (the global norm over the shards decided it), and the norms agree.
        let plainNorms = try job.series("grad_norm", "plain"), zeroNorms = try job.series("grad_norm", "zero")
        XCTAssertTrue(zeroNorms.contains { $0 > 0.5 }, "no step was clipped: \(zeroNorms)")
        for (a, b) in zip(plainNorms, zeroNorms) { XCTAssertEqual(a, b, accuracy: 1e-6 * a) }
        // The loss curves agree step by step too.
        let plainLoss = try job.series("loss", "plain"), zeroLoss = try job.series("loss", "zero")
        XCTAssertEqual(plainLoss.count, 10)
        for (a, b) in zip(plainLoss, zeroLoss) { XCTAssertEqual(a, b, accuracy: 1e-6 * max(1, abs(a))) }
    }

    /// fp16 working weights (fp16 on the wire both ways, loss scaling): `--zero 1` all-gathers
    /// binary16 working weights rounded from its master shard, and ends within 1e-6 of `--zero 0`.
    func testZeroOneMatchesZeroZeroUnderFP16() throws {
        let job = try TrainingJobSandbox()
        let common = ["--lr", "1e-3", "--batch-pairs", "2", "--max-steps", "6", "--precision", "fp16"]
        try job.trainSucceeding(ranks: 2, out: "plain", common + ["--zero", "0"])
        try job.trainSucceeding(ranks: 2, out: "zero", common + ["--zero", "1"])
        let plain = try job.adamwMasterWeights("plain"), zero = try job.adamwMasterWeights("zero")
        let difference = maxAbsDifference(plain, zero)
        print("fp16: zero 1 vs zero 0 after 6 steps: max|difference| / max|weight| = \(difference / maxAbs(plain))")
        XCTAssertLessThanOrEqual(difference, 1e-6 * maxAbs(plain))
        XCTAssertEqual(try job.series("loss", "zero").count, 6)
        try job.assertTrained("zero")
    }

    /// SGD keeps no moments: the shards hold master weights only, and a stop + `--resume auto`
    /// still ends bit-identical to `--zero 0`'s straight run (on 2 ranks every sum is one addition).
    func testSGDShardsHoldMasterWeightsOnlyAndResume() throws {
        let job = try TrainingJobSandbox()
        let common = ["--optimizer", "sgd", "--lr", "0.5", "--batch-pairs", "2", "--max-steps", "4", "--save-every", "2"]
        try job.trainSucceeding(ranks: 2, out: "plain", common + ["--zero", "0"])
        try job.trainStopping(ranks: 2, out: "zero", common + ["--zero", "1"], faults: "stop:step=2")
        try job.trainSucceeding(ranks: 2, out: "zero", common + ["--zero", "1", "--resume", "auto"])
        let shard = try SafetensorsFile(contentsOf: job.out("zero").appendingPathComponent("final/optimizer-shard-00001-of-00002.safetensors"))
        XCTAssertEqual(shard.tensors.map(\.name), ["master_weights"])
        XCTAssertEqual(try TrainingCheckpoint.read(job.out("zero").appendingPathComponent("final"), optimizerKind: .sgd).masterWeights,
                       try TrainingCheckpoint.read(job.out("plain").appendingPathComponent("final"), optimizerKind: .sgd).masterWeights)
    }

    // MARK: - Resume

    /// Straight 6 steps vs a stop after step 3 and `--resume auto`, both `--zero 1` on 2 ranks:
    /// bit-identical master weights, model file and optimizer shards.
    func testResumeFromZeroCheckpointIsBitIdenticalOnTheSameWorldSize() throws {
        let job = try TrainingJobSandbox()
        let common = ["--lr", "1e-3", "--warmup-steps", "2", "--batch-pairs", "1", "--grad-accum", "2",
                      "--max-steps", "6", "--save-every", "3", "--keep-checkpoints", "0", "--zero", "1"]
        try job.trainSucceeding(ranks: 2, out: "straight", common)
        XCTAssertEqual(try shardNames(job, "straight", "checkpoint-3"),
                       ["optimizer-shard-00000-of-00002.safetensors", "optimizer-shard-00001-of-00002.safetensors"])
        let manifest = try CheckpointStore.verify(job.out("straight").appendingPathComponent("checkpoint-3"))
        XCTAssertNotNil(manifest.files["optimizer-shard-00001-of-00002.safetensors"], "the manifest lists every shard")

        try job.trainStopping(ranks: 2, out: "auto", common, faults: "stop:rank=1:step=3")
        let resumed = try job.trainSucceeding(ranks: 2, out: "auto", common + ["--resume", "auto"])
        XCTAssertTrue(resumed.output.contains("at step 3"), resumed.output)

        XCTAssertEqual(try job.adamwMasterWeights("auto"), try job.adamwMasterWeights("straight"), "bit-identical master weights")
        for file in ["model.safetensors", "optimizer-shard-00000-of-00002.safetensors", "optimizer-shard-00001-of-00002.safetensors"] {
            XCTAssertEqual(try Data(contentsOf: job.out("auto").appendingPathComponent("final/\(file)")),
                           try Data(contentsOf: job.out("straight").appendingPathComponent("final/\(file)")), file)
        }
        XCTAssertEqual(withoutTiming(try job.metrics("auto")), withoutTiming(try job.metrics("straight")))
    }

    /// A 2-rank ZeRO checkpoint resumed on 1 rank (with `--zero 0` and with `--zero 1`) and a
    /// 1-rank `--zero 0` checkpoint resumed on 2 ranks with `--zero 1`, running no further step:
    /// the saved optimizer state is the same moments, resharded, bit for bit.
    func testResumeOntoAnotherWorldSizeReshardsTheMoments() throws {
        let job = try TrainingJobSandbox()
        let common = ["--lr", "1e-3", "--batch-pairs", "2", "--save-every", "3", "--keep-checkpoints", "0"]
        try job.trainSucceeding(ranks: 2, out: "two", common + ["--max-steps", "3", "--zero", "1"])
        let saved = try TrainingCheckpoint.read(job.out("two").appendingPathComponent("final"), optimizerKind: .adamw)
        XCTAssertFalse(saved.firstMoment.allSatisfy { $0 == 0 }, "moments were trained")
        let resumeFrom = job.out("two").appendingPathComponent("final").path
        for (ranks, zero) in [(1, "0"), (1, "1")] {
            let out = "one-zero\(zero)"
            let run = try job.trainSucceeding(ranks: ranks, out: out, common + ["--max-steps", "3", "--zero", zero, "--resume", resumeFrom])
            XCTAssertTrue(run.output.contains("at step 3"), run.output)
            let now = try TrainingCheckpoint.read(job.out(out).appendingPathComponent("final"), optimizerKind: .adamw)
            XCTAssertEqual(now.masterWeights, saved.masterWeights, "\(out): master weights")
            XCTAssertEqual(now.firstMoment, saved.firstMoment, "\(out): exp_avg")
            XCTAssertEqual(now.secondMoment, saved.secondMoment, "\(out): exp_avg_sq")
            XCTAssertEqual(now.optimizerStep, saved.optimizerStep)
        }
        // And back: the 1-rank --zero 0 checkpoint onto 2 ranks with --zero 1.
        let back = try job.trainSucceeding(ranks: 2, out: "back", common + [
            "--max-steps", "3", "--zero", "1", "--resume", job.out("one-zero0").appendingPathComponent("final").path])
        XCTAssertTrue(back.output.contains("at step 3"), back.output)
        let now = try TrainingCheckpoint.read(job.out("back").appendingPathComponent("final"), optimizerKind: .adamw)
        XCTAssertEqual(now.firstMoment, saved.firstMoment)
        XCTAssertEqual(now.secondMoment, saved.secondMoment)
        // Moments of one shard only (a rank's view), from the 2-shard checkpoint.
        let middle = 5..<(saved.firstMoment.count - 3)
        let slice = try TrainingCheckpoint.read(job.out("two").appendingPathComponent("final"), optimizerKind: .adamw, momentRange: middle)
        XCTAssertEqual(slice.firstMoment, Array(saved.firstMoment[middle]))
        XCTAssertEqual(slice.secondMoment, Array(saved.secondMoment[middle]))
    }

    // MARK: - Incomplete checkpoints

    /// Rank 1's optimizer shard removed from the newest checkpoint: reading it names the missing
    /// shard, and `--resume auto` skips it for the previous complete one.
    func testCheckpointMissingOneShardIsIncompleteAndSkipped() throws {
        let job = try TrainingJobSandbox()
        let common = ["--lr", "1e-3", "--batch-pairs", "2", "--max-steps", "6", "--save-every", "2", "--keep-checkpoints", "0", "--zero", "1"]
        try job.trainStopping(ranks: 2, out: "run", common, faults: "stop:step=4")
        let newest = job.out("run").appendingPathComponent("checkpoint-4")
        let shard = newest.appendingPathComponent("optimizer-shard-00001-of-00002.safetensors")
        try FileManager.default.removeItem(at: shard)

        XCTAssertThrowsError(try CheckpointStore.verify(newest)) { error in
            XCTAssertTrue("\(error)".contains("optimizer-shard-00001-of-00002.safetensors listed in the manifest is missing"), "\(error)")
        }
        XCTAssertThrowsError(try TrainingCheckpoint.read(newest, optimizerKind: .adamw)) { error in
            XCTAssertTrue("\(error)".contains("the optimizer shard of rank 1 of 2 (optimizer-shard-00001-of-00002.safetensors) is missing"),
                          "\(error)")
        }
        let resumed = try job.trainSucceeding(ranks: 2, out: "run", common + ["--resume", "auto"])
        XCTAssertTrue(resumed.output.contains("skipping \(newest.path)"), resumed.output)
        XCTAssertTrue(resumed.output.contains("resuming from \(job.out("run").appendingPathComponent("checkpoint-2").path) at step 2"),
                      resumed.output)
    }
}
