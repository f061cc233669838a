import Foundation
import Llama
import TestSupport
import XCTest

@testable import Training

/// The real trainer (`dpo train`, the built binary) on 2 MPI ranks against 1 process:
/// same global batch, same seed, same loss curve and weights; gradient accumulation;
/// uneven shards; exact resume on 1 and 2 ranks and onto another world size.
///
/// Each job runs a 1-layer model with a hidden size of 32 for a few steps (well under a
/// second of compute); most of a test's time is process and MPI start-up.
final class MultiRankTrainingTests: XCTestCase {

    // MARK: - Equivalence

    /// Per tensor, max |a - b| <= relative x max |weight|: the bar for fp32 SGD.
    func assertTensorsClose(_ a: [String: [Float]], _ b: [String: [Float]], relative: Float, _ label: String,
                            file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(Set(a.keys), Set(b.keys), label, file: file, line: line)
        var worst: Float = 0
        defer { print("\(label): largest per-tensor max|difference| / max|weight| = \(worst)") }
        for (name, x) in a {
            guard let y = b[name] else { continue }
            let bound = relative * max(maxAbs(x), maxAbs(y))
            worst = max(worst, maxAbsDifference(x, y) / max(maxAbs(x), maxAbs(y)))
            XCTAssertLessThanOrEqual(maxAbsDifference(x, y), bound, "\(label): \(name)", file: file, line: line)
        }
    }

    /// The largest relative difference between two loss curves of equal length.
    func assertCurvesClose(_ a: [Double], _ b: [Double], relative: Double, _ label: String,
                           file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, "\(label): \(a) vs \(b)", file: file, line: line)
        for (x, y) in zip(a, b) {
            XCTAssertLessThanOrEqual(abs(x - y), relative * max(abs(x), abs(y), 1e-3), "\(label): \(a) vs \(b)", file: file, line: line)
        }
    }

    /// 2 ranks x 2 pairs and 1 rank x 4 pairs, SGD in fp32 with clipping and a linear schedule,
    /// 2 epochs of 8 shuffled pairs: each global step holds the same 4 pairs (rank r takes
    /// positions r, r+2, ... of the same permutation), so only the summation order differs.
    func testTwoRanksMatchOneRankWithTwiceTheBatchUnderSGD() throws {
        let job = try TrainingJobSandbox()
        let common = ["--optimizer", "sgd", "--lr", "0.5", "--epochs", "2", "--allreduce-dtype", "fp32"]
        try job.trainSucceeding(ranks: 1, out: "one", common + ["--batch-pairs", "4"])
        // 10 KiB buckets: the ~100 KiB gradient goes as ~10 all-reduces started during backward.
        let two = try job.trainSucceeding(ranks: 2, out: "two", common + ["--batch-pairs", "2", "--bucket-mb", "0.01"])
        XCTAssertTrue(two.output.contains("global batch 4 pairs (2 x 1 x 2 ranks)"), two.output)
        XCTAssertTrue(two.output.contains("all-reduce fp32, 1 BLAS thread(s) per rank"), two.output)

        let lossOne = try job.series("loss", "one"), lossTwo = try job.series("loss", "two")
        XCTAssertEqual(lossOne.count, 4)
        assertCurvesClose(lossOne, lossTwo, relative: 1e-5, "loss curve")
        assertCurvesClose(try job.series("grad_norm", "one"), try job.series("grad_norm", "two"), relative: 1e-5, "grad_norm")
        assertCurvesClose(try job.series("rewards/margins", "one"), try job.series("rewards/margins", "two"), relative: 1e-4, "margins")
        XCTAssertEqual(try job.series("learning_rate", "one"), try job.series("learning_rate", "two"))

        let one = try job.tensors("one"), twoTensors = try job.tensors("two"), initial = try job.initialTensors()
        // The run moved every tensor far more than the tolerance (else the comparison proves nothing).
        let moved = one.map { name, w in maxAbsDifference(w, initial[name]!) / maxAbs(w) }.min() ?? 0
        XCTAssertGreaterThan(moved, 1e-3)
        assertTensorsClose(one, twoTensors, relative: 1e-5, "SGD fp32, 2 ranks vs 1")
    }

    /// AdamW, fp16 storage, fp16 gradients on the wire, 4 steps at lr 1e-3.
    ///
    /// Tolerance: each fp16 all-reduce rounds every averaged gradient element to 11
    /// significant bits (relative error <= 2^-11 ~ 4.9e-4), where one process has no wire
    /// rounding. Adam's update m / (sqrt(v) + eps) is scale-free, so a gradient off by a
    /// relative r moves an update by ~r x lr; only elements whose gradient is ~0 can flip
    /// their step (up to 2 x lr each). After 4 steps |difference| <= 4 x 2 x lr bounds every
    /// weight; the bulk must be far below it: the RMS difference under 1% of the RMS
    /// movement. The loss curves agree to 1e-3 relative (the fp16 forward is identical
    /// while the weights are; only the rounded gradients differ).
    func testTwoRanksWithFP16WireMatchOneRankUnderAdamWWithinHalfPrecision() throws {
        let job = try TrainingJobSandbox()
        let lr = 1e-3
        let common = ["--optimizer", "adamw", "--lr", "\(lr)", "--max-steps", "4", "--precision", "fp16", "--schedule", "constant"]
        try job.trainSucceeding(ranks: 1, out: "one", common + ["--batch-pairs", "4"])
        let two = try job.trainSucceeding(ranks: 2, out: "two", common + ["--batch-pairs", "2", "--allreduce-dtype", "fp16"])
        XCTAssertTrue(two.output.contains("all-reduce fp16"), two.output)
        assertCurvesClose(try job.series("loss", "one"), try job.series("loss", "two"), relative: 1e-3, "fp16 loss curve")

        let one = try job.masterWeights("one"), twoWeights = try job.masterWeights("two")
        let start = try ModelDirectory.load(job.sandbox.modelDirectory).weights
        XCTAssertLessThanOrEqual(maxAbsDifference(one, twoWeights), Float(4 * 2 * lr))
        func rms(_ a: [Float], _ b: [Float]) -> Double {
            (zip(a, b).reduce(0.0) { $0 + Double(($1.0 - $1.1) * ($1.0 - $1.1)) } / Double(a.count)).squareRoot()
        }
        let movement = rms(one, start), difference = rms(one, twoWeights)
        print("AdamW fp16 wire: max|difference| \(maxAbsDifference(one, twoWeights)) (bound \(4 * 2 * lr)), RMS difference \(difference), RMS movement \(movement)")
        XCTAssertGreaterThan(movement, 1e-3, "AdamW moved the weights")
        XCTAssertLessThan(difference, 0.01 * movement, "RMS difference \(difference) vs RMS movement \(movement)")
    }

    // MARK: - Gradient accumulation

    /// 2 ranks x 1 pair x 2 micro-steps = 1 rank x 4 pairs (SGD, fp32): same weights and curve;
    /// and with AdamW and --precompute-ref.
    func testGradientAccumulationOnTwoRanksEqualsOneLargeBatch() throws {
        let job = try TrainingJobSandbox()
        let common = ["--optimizer", "sgd", "--lr", "0.5", "--max-steps", "3"]
        try job.trainSucceeding(ranks: 1, out: "one", common + ["--batch-pairs", "4"])
        let two = try job.trainSucceeding(ranks: 2, out: "accum", common + ["--batch-pairs", "1", "--grad-accum", "2"])
        XCTAssertTrue(two.output.contains("global batch 4 pairs (1 x 2 x 2 ranks)"), two.output)
        assertCurvesClose(try job.series("loss", "one"), try job.series("loss", "accum"), relative: 1e-5, "loss curve")
        assertTensorsClose(try job.tensors("one"), try job.tensors("accum"), relative: 1e-5, "accumulation on 2 ranks vs 1 batch")

        // AdamW with the reference log-probs precomputed (split over the ranks and gathered)
        // against the live reference on 1 rank. fp32 all the way; AdamW divides by sqrt(v),
        // which magnifies the summation-order differences of tiny gradients: 1e-4 x max|weight|.
        let adamw = ["--optimizer", "adamw", "--lr", "1e-2", "--max-steps", "3"]
        try job.trainSucceeding(ranks: 1, out: "adam-one", adamw + ["--batch-pairs", "4"])
        let cached = try job.trainSucceeding(ranks: 2, out: "adam-accum", adamw + ["--batch-pairs", "1", "--grad-accum", "2", "--precompute-ref"])
        XCTAssertTrue(cached.output.contains("reference log-probs of train data: computed 8 pairs"), cached.output)
        assertCurvesClose(try job.series("loss", "adam-one"), try job.series("loss", "adam-accum"), relative: 1e-5, "AdamW loss curve")
        assertTensorsClose(try job.tensors("adam-one"), try job.tensors("adam-accum"), relative: 1e-4, "AdamW + accumulation + precompute-ref, 2 ranks vs 1")
    }

    // MARK: - Uneven shards

    /// 7 pairs on 2 ranks x 2 pairs: rank 0 has 4 pairs an epoch, rank 1 has 3 plus one
    /// repeated (the sampler pads to a multiple of the ranks), so both take 2 steps an epoch;
    /// 2 epochs end at step 4 on both (the final save's checksum comparison is a collective
    /// every rank must reach) and the job exits 0.
    func testUnevenShardsFinishWithEveryRankAtTheSameStep() throws {
        let job = try TrainingJobSandbox(pairs: Array(TrainingJobSandbox.eightPairs.prefix(7)))
        // A rank left waiting would hang in the collective (status 0 and no time-out are asserted).
        let outcome = try job.trainSucceeding(ranks: 2, out: "uneven", ["--batch-pairs", "2", "--epochs", "2", "--lr", "1e-3"])
        XCTAssertTrue(outcome.output.contains("training 4 step(s)"), outcome.output)
        XCTAssertEqual(try job.metrics("uneven").map { Int($0["step"]!) }, [1, 2, 3, 4])
        let manifest = try CheckpointStore.verify(job.out("uneven").appendingPathComponent("final"))
        XCTAssertEqual(manifest.step, 4)
    }

    // MARK: - Exact resume

    /// Straight 6 steps vs 3 + resume (`--resume DIR` into a new OUT, and a stop at step 3
    /// followed by `--resume auto`): bit-identical master weights and model files, and the
    /// same metrics, on 1 rank and on 2 ranks (AdamW, warmup + linear decay, accumulation).
    func testResumeIsBitIdenticalOnOneAndTwoRanks() throws {
        let job = try TrainingJobSandbox()
        for ranks in [1, 2] {
            let common = ["--lr", "1e-3", "--warmup-steps", "2", "--batch-pairs", "\(4 / ranks / 2)", "--grad-accum", "2",
                          "--max-steps", "6", "--save-every", "3", "--keep-checkpoints", "0"]
            let straight = "straight-\(ranks)", fromDirectory = "dir-\(ranks)", auto = "auto-\(ranks)"
            try job.trainSucceeding(ranks: ranks, out: straight, common)

            let resumed = try job.trainSucceeding(ranks: ranks, out: fromDirectory,
                                                  common + ["--resume", job.out(straight).appendingPathComponent("checkpoint-3").path])
            XCTAssertTrue(resumed.output.contains("at step 3"), resumed.output)

            // Stop after step 3 (as SIGTERM would; requested on the last rank only, so the ranks must agree), then --resume auto.
            let stopped = try job.trainStopping(ranks: ranks, out: auto, common, faults: "stop:rank=\(ranks - 1):step=3")
            XCTAssertTrue(stopped.output.contains("stopped at step 3/6 on request"), stopped.output)
            XCTAssertFalse(FileManager.default.fileExists(atPath: job.out(auto).appendingPathComponent("final").path))
            try job.trainSucceeding(ranks: ranks, out: auto, common + ["--resume", "auto"])

            let reference = try job.masterWeights(straight)
            for other in [fromDirectory, auto] {
                XCTAssertEqual(try job.masterWeights(other), reference, "\(ranks) rank(s), \(other): bit-identical master weights")
                XCTAssertEqual(try Data(contentsOf: job.out(other).appendingPathComponent("final/model.safetensors")),
                               try Data(contentsOf: job.out(straight).appendingPathComponent("final/model.safetensors")), other)
            }
            let straightLines = withoutTiming(try job.metrics(straight))
            XCTAssertEqual(straightLines.count, 6)
            XCTAssertEqual(withoutTiming(try job.metrics(auto)), straightLines, "\(ranks) rank(s): metrics.jsonl reads as if never stopped")
            XCTAssertEqual(withoutTiming(try job.metrics(fromDirectory)), Array(straightLines.suffix(3)), "\(ranks) rank(s): steps 4-6")
        }
    }

    /// 2 ranks x 1 pair x 2 micro-steps stopped at step 2, resumed on 1 rank x 1 pair: the
    /// global batch (4) is kept with --grad-accum 4, the message says so and how the data
    /// order changed, and the run ends where the uninterrupted 2-rank run does (up to the
    /// summation order). With 7 pairs the padded last step of an epoch changes, and the message says that.
    func testResumeOnFewerRanksKeepsTheGlobalBatch() throws {
        let job = try TrainingJobSandbox()
        let common = ["--optimizer", "sgd", "--lr", "0.5", "--batch-pairs", "1", "--max-steps", "4"]
        try job.trainSucceeding(ranks: 2, out: "straight", common + ["--grad-accum", "2"])

        try job.trainStopping(ranks: 2, out: "shrink", common + ["--grad-accum", "2"], faults: "stop:step=2")
        let shrink = try job.trainSucceeding(ranks: 1, out: "shrink", common + ["--grad-accum", "2", "--resume", "auto"])
        XCTAssertTrue(shrink.output.contains("resuming with 1 rank(s) x 1 pairs: --grad-accum 2 -> 4 keeps the global batch of 4 pairs"),
                      shrink.output)
        XCTAssertTrue(shrink.output.contains("each step sees the same pairs as before (the split across ranks and micro-steps differs)"), shrink.output)
        assertTensorsClose(try job.tensors("straight"), try job.tensors("shrink"), relative: 1e-5, "2 ranks -> 1 rank")
        assertCurvesClose(try job.series("loss", "straight"), try job.series("loss", "shrink"), relative: 1e-5, "2 -> 1 loss curve")

        // 7 pairs: on 2 ranks an epoch is padded to 8 (the first pair of the permutation
        // repeats in the last step), on 1 rank it is not; the message says so.
        let odd = try TrainingJobSandbox(pairs: Array(TrainingJobSandbox.eightPairs.prefix(7)))
        try odd.trainStopping(ranks: 2, out: "odd", common + ["--grad-accum", "2"], faults: "stop:step=1")
        let oddResumed = try odd.trainSucceeding(ranks: 1, out: "odd", common + ["--grad-accum", "2", "--resume", "auto"])
        XCTAssertTrue(oddResumed.output.contains(
            "except the last step of each epoch, which now repeats 0 instead of 1 pair(s) from the epoch's start"), oddResumed.output)
    }

    /// 1 rank x 1 pair x 4 micro-steps stopped at step 2, resumed on 2 ranks: --grad-accum 4 -> 2,
    /// and the run ends where the uninterrupted 1-rank run does.
    func testResumeOnMoreRanksKeepsTheGlobalBatch() throws {
        let job = try TrainingJobSandbox()
        let common = ["--optimizer", "sgd", "--lr", "0.5", "--batch-pairs", "1", "--max-steps", "4", "--grad-accum", "4"]
        try job.trainSucceeding(ranks: 1, out: "straight", common)
        try job.trainStopping(ranks: 1, out: "grow", common, faults: "stop:step=2")
        let grow = try job.trainSucceeding(ranks: 2, out: "grow", common + ["--resume", "auto"])
        XCTAssertTrue(grow.output.contains("resuming with 2 rank(s) x 1 pairs: --grad-accum 4 -> 2 keeps the global batch of 4 pairs"), grow.output)
        assertTensorsClose(try job.tensors("straight"), try job.tensors("grow"), relative: 1e-5, "1 rank -> 2 ranks")
        assertCurvesClose(try job.series("loss", "straight"), try job.series("loss", "grow"), relative: 1e-5, "1 -> 2 loss curve")
    }
}
