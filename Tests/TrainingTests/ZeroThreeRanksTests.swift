import Foundation
import Llama
import TestSupport
import XCTest

@testable import Training

/// `--zero 1|2` on 3 ranks, where the tiny model's 17 600 parameters do not divide by the world
/// size (shards of 5 867, 5 867 and 5 866 elements, each spanning several buckets of about 2 600,
/// the last bucket cut short), and a 3-rank checkpoint resumed on 2 ranks. The other multi-rank
/// tests run 2 ranks, where these counts divide evenly.
final class ZeroThreeRanksTests: XCTestCase {
    func testUnevenShardsOnThreeRanksTrainAsZeroZeroAndReshardOntoTwo() throws {
        let job = try TrainingJobSandbox()
        XCTAssertNotEqual(ParameterLayout(config: TrainerSandbox.tinyConfig).totalCount % 3, 0, "the shards must be uneven")
        let common = ["--lr", "1e-3", "--batch-pairs", "1", "--grad-accum", "2", "--max-steps", "4", "--max-grad-norm", "0.5",
                      "--bucket-mb", "0.01", "--save-every", "4"]
        for zero in ["0", "1", "2"] { try job.trainSucceeding(ranks: 3, out: "zero\(zero)", common + ["--zero", zero]) }
        let plain = try job.adamwMasterWeights("zero0")
        for zero in ["1", "2"] {
            let sharded = try job.adamwMasterWeights("zero\(zero)")
            print("3 ranks: zero \(zero) vs zero 0 after 4 steps: max|difference| / max|weight| = \(maxAbsDifference(plain, sharded) / maxAbs(plain))")
            XCTAssertLessThanOrEqual(maxAbsDifference(plain, sharded), 1e-6 * maxAbs(plain), "--zero \(zero)")
        }
        try job.assertTrained("zero2")

        // The 3-shard checkpoint on 2 ranks, no further step: the same moments, resharded, bit for bit.
        let saved = try TrainingCheckpoint.read(job.out("zero2").appendingPathComponent("final"), optimizerKind: .adamw)
        let resumed = try job.trainSucceeding(ranks: 2, out: "two", common + [
            "--zero", "2", "--resume", job.out("zero2").appendingPathComponent("final").path])
        XCTAssertTrue(resumed.output.contains("at step 4"), resumed.output)
        let now = try TrainingCheckpoint.read(job.out("two").appendingPathComponent("final"), optimizerKind: .adamw)
        XCTAssertEqual(now.masterWeights, saved.masterWeights)
        XCTAssertEqual(now.firstMoment, saved.firstMoment)
        XCTAssertEqual(now.secondMoment, saved.secondMoment)
        XCTAssertFalse(saved.secondMoment.allSatisfy { $0 == 0 }, "moments were trained")
    }
}
