import Foundation
import Llama
import TestSupport
import XCTest

@testable import Training

/// `--zero 2` (ZeRO stage 2: gradients partitioned too) with the real trainer on 2 MPI ranks,
/// against `--zero 1`. Untied, with one micro-batch per step, both compute the same sums in the
/// same order (same buckets; the shard of the mean is written, not added), so the weights must
/// be bit-identical. Stage 2 adds reduced means where stage 1 reduces one sum in two cases: the
/// micro-batches of `--grad-accum 2`, and a tied embedding's two parts (the LM head's gradient,
/// reduced early, and the embedding scatter's): equal to rounding, tolerances below.
/// Small buckets (`--bucket-mb 0.01`: about 2 600 fp32 elements) so a step has several, and
/// whole pages of the gradient window are released during backward.
final class ZeroTwoTrainingTests: XCTestCase {
    let buckets = ["--bucket-mb", "0.01"]

    var untied: LlamaConfig {
        var config = TrainerSandbox.tinyConfig
        config.tieWordEmbeddings = false
        return config
    }

    /// fp32, clipping active, 6 AdamW steps. Untied: bit-identical to `--zero 1`, norms and
    /// losses too. Tied: the embedding rows of the batch's tokens get their two parts' means
    /// added (two roundings of a 2-term sum instead of one), within 1e-6 of the largest weight
    /// (ZeRO-1's own bound against `--zero 0`).
    func testZeroTwoMatchesZeroOneInFP32WithClippingTiedAndUntied() throws {
        let common = ["--lr", "1e-3", "--batch-pairs", "2", "--max-steps", "6", "--max-grad-norm", "0.5"] + buckets
        let job = try TrainingJobSandbox(config: untied)
        try job.trainSucceeding(ranks: 2, out: "one", common + ["--zero", "1"])
        try job.trainSucceeding(ranks: 2, out: "two", common + ["--zero", "2"])
        XCTAssertEqual(try job.adamwMasterWeights("two"), try job.adamwMasterWeights("one"))
        XCTAssertEqual(try job.series("grad_norm", "two"), try job.series("grad_norm", "one"))
        XCTAssertTrue(try job.series("grad_norm", "two").contains { $0 > 0.5 }, "no step was clipped")
        XCTAssertEqual(withoutTiming(try job.metrics("two")), withoutTiming(try job.metrics("one")))
        try job.assertTrained("two")

        let tied = try TrainingJobSandbox()
        XCTAssertTrue(TrainerSandbox.tinyConfig.tieWordEmbeddings)
        try tied.trainSucceeding(ranks: 2, out: "one", common + ["--zero", "1"])
        try tied.trainSucceeding(ranks: 2, out: "two", common + ["--zero", "2"])
        let one = try tied.adamwMasterWeights("one"), two = try tied.adamwMasterWeights("two")
        print("tied fp32: zero 2 vs zero 1 after 6 steps: max|difference| / max|weight| = \(maxAbsDifference(one, two) / maxAbs(one))")
        XCTAssertLessThanOrEqual(maxAbsDifference(one, two), 1e-6 * maxAbs(one))
        XCTAssertTrue(try tied.series("grad_norm", "two").contains { $0 > 0.5 }, "no step was clipped")
        for (a, b) in zip(try tied.series("grad_norm", "one"), try tied.series("grad_norm", "two")) { XCTAssertEqual(a, b, accuracy: 1e-5 * a) }
        try tied.assertTrained("two")
    }

    /// fp16 working weights, fp16 on the wire, loss scaling, 4 steps. Untied: bit-identical to
    /// `--zero 1`. Tied: the two parts' means are each rounded to binary16 on the wire (relative
    /// 2^-11 each) where ZeRO-1 rounds their sum once; an AdamW step moves a weight by about lr
    /// at most, so 4 steps differ by about 4 x lr x 2^-10 = 4e-6 at most, 2e-5 of the largest
    /// weight (~0.2): bound 1e-4 (the fp16 working copy, rounded from these, is what trains).
    func testZeroTwoMatchesZeroOneInFP16TiedAndUntied() throws {
        let common = ["--lr", "1e-3", "--batch-pairs", "2", "--max-steps", "4", "--precision", "fp16"] + buckets
        let job = try TrainingJobSandbox(config: untied)
        try job.trainSucceeding(ranks: 2, out: "one", common + ["--zero", "1"])
        try job.trainSucceeding(ranks: 2, out: "two", common + ["--zero", "2"])
        XCTAssertEqual(try job.adamwMasterWeights("two"), try job.adamwMasterWeights("one"))
        XCTAssertEqual(try job.series("loss", "two"), try job.series("loss", "one"))
        try job.assertTrained("two")

        let tied = try TrainingJobSandbox()
        try tied.trainSucceeding(ranks: 2, out: "one", common + ["--zero", "1"])
        try tied.trainSucceeding(ranks: 2, out: "two", common + ["--zero", "2"])
        let one = try tied.adamwMasterWeights("one"), two = try tied.adamwMasterWeights("two")
        print("tied fp16: zero 2 vs zero 1 after 4 steps: max|difference| / max|weight| = \(maxAbsDifference(one, two) / maxAbs(one))")
        XCTAssertLessThanOrEqual(maxAbsDifference(one, two), 1e-4 * maxAbs(one))
        try tied.assertTrained("two")
    }

    /// `--grad-accum 2` (fp32, clipping): each micro-batch reduced on its own, the means added in
    /// the shard; within 1e-6 of `--zero 1` relative to the largest weight (one rounding of a
    /// gradient sum per micro-batch apart), and far from the untrained weights.
    func testGradientAccumulationAddsTheMicroBatchMeans() throws {
        let job = try TrainingJobSandbox()
        let common = ["--lr", "1e-3", "--batch-pairs", "1", "--grad-accum", "2", "--max-steps", "4", "--max-grad-norm", "0.5"] + buckets
        try job.trainSucceeding(ranks: 2, out: "one", common + ["--zero", "1"])
        try job.trainSucceeding(ranks: 2, out: "two", common + ["--zero", "2"])
        let one = try job.adamwMasterWeights("one"), two = try job.adamwMasterWeights("two")
        let difference = maxAbsDifference(one, two)
        print("--grad-accum 2: zero 2 vs zero 1 after 4 steps: max|difference| / max|weight| = \(difference / maxAbs(one))")
        XCTAssertLessThanOrEqual(difference, 1e-6 * maxAbs(one))
        for (a, b) in zip(try job.series("grad_norm", "one"), try job.series("grad_norm", "two")) { XCTAssertEqual(a, b, accuracy: 1e-5 * a) }
        try job.assertTrained("two")
    }

    /// A NaN in rank 1's shard of the reduced gradients at step 2 (fp16, loss scaling): every
    /// rank skips the step and backs off the loss scale, exactly as `--zero 1` does.
    func testNonFiniteGradientOnOneRankSkipsTheStepEverywhere() throws {
        let job = try TrainingJobSandbox(config: untied)
        let common = ["--lr", "1e-3", "--batch-pairs", "2", "--max-steps", "3", "--precision", "fp16"] + buckets
        let two = try job.trainSucceeding(ranks: 2, out: "two", common + ["--zero", "2"], faults: "nan:rank=1:step=2")
        XCTAssertTrue(two.output.contains("step 2: non-finite loss or gradients, update skipped"), two.output)
        try job.trainSucceeding(ranks: 2, out: "one", common + ["--zero", "1"], faults: "nan:rank=1:step=2")
        XCTAssertEqual(try job.adamwMasterWeights("two"), try job.adamwMasterWeights("one"))
        XCTAssertEqual(try job.series("loss_scale", "two"), try job.series("loss_scale", "one"))
    }

    /// The optimizer shards are ZeRO-1's format: (untied) a run stopped after step 3 under
    /// `--zero 1` and resumed under `--zero 2`, and one stopped and resumed under `--zero 2`, end
    /// bit-identical to a straight `--zero 1` run, model file included; (tied) a `--zero 2` run
    /// stopped and resumed ends bit-identical to a straight `--zero 2` run.
    func testResumeAcrossZeroOneAndTwoIsBitIdentical() throws {
        let job = try TrainingJobSandbox(config: untied)
        let common = ["--lr", "1e-3", "--warmup-steps", "2", "--batch-pairs", "2", "--max-steps", "6", "--save-every", "3",
                      "--keep-checkpoints", "0"] + buckets
        try job.trainSucceeding(ranks: 2, out: "straight", common + ["--zero", "1"])
        for (first, then) in [("1", "2"), ("2", "2")] {
            let out = "from\(first)to\(then)"
            try job.trainStopping(ranks: 2, out: out, common + ["--zero", first], faults: "stop:step=3")
            let resumed = try job.trainSucceeding(ranks: 2, out: out, common + ["--zero", then, "--resume", "auto"])
            XCTAssertTrue(resumed.output.contains("at step 3"), resumed.output)
            XCTAssertEqual(try job.adamwMasterWeights(out), try job.adamwMasterWeights("straight"), out)
            for file in ["model.safetensors", "optimizer-shard-00000-of-00002.safetensors", "optimizer-shard-00001-of-00002.safetensors"] {
                XCTAssertEqual(try Data(contentsOf: job.out(out).appendingPathComponent("final/\(file)")),
                               try Data(contentsOf: job.out("straight").appendingPathComponent("final/\(file)")), "\(out): \(file)")
            }
        }
        let tied = try TrainingJobSandbox()
        try tied.trainSucceeding(ranks: 2, out: "straight", common + ["--zero", "2"])
        try tied.trainStopping(ranks: 2, out: "resumed", common + ["--zero", "2"], faults: "stop:step=3")
        try tied.trainSucceeding(ranks: 2, out: "resumed", common + ["--zero", "2", "--resume", "auto"])
        XCTAssertEqual(try tied.adamwMasterWeights("resumed"), try tied.adamwMasterWeights("straight"), "tied, --zero 2")
    }

    /// LoRA trains a few MB of adapters: `--zero 2` is refused like `--zero 1`, naming the stage.
    func testZeroTwoWithLoRAIsRefused() {
        var p = TrainingParameters()
        p.modelDirectory = "m"; p.dataFile = "d"; p.outputDirectory = "o"
        p.loraRank = 8
        p.zero = 2
        XCTAssertThrowsError(try p.validate()) { XCTAssertTrue("\($0)".contains("--zero 2 shards the optimizer state"), "\($0)") }
    }
}
