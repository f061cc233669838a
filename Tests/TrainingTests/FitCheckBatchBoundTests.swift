import Foundation
import TestSupport
import XCTest

@testable import Training

/// Issue 16's "global batch 100000 pairs for 200 pairs": the printed batch was fixed, but the
/// fit check still estimated the batch asked for, so `--batch-pairs 100000` on 8 pairs was
/// refused as needing terabytes. It now estimates the batch that runs: at most the encoded
/// pairs a rank gets, rows no longer than the data's longest.
final class FitCheckBatchBoundTests: XCTestCase {
    func testABatchLargerThanTheDataIsEstimatedAsTheBatchThatRuns() throws {
        let job = try TrainingJobSandbox()
        let run = try job.train(ranks: 1, out: "run", ["--batch-pairs", "100000", "--max-steps", "1"])
        XCTAssertEqual(run.status, 0, run.output)
        XCTAssertFalse(run.output.contains("memory:"), run.output)
        XCTAssertTrue(run.output.contains("global batch      8 pairs: all 8 train pairs each step"), run.output)
        // A run that truly does not fit is still refused (10 KiB available to the rank).
        let tight = try MPIJob.dpo(ranks: 1, job.trainArguments(out: "tight", ["--batch-pairs", "100000"]),
                                   extraEnvironment: ["DPO_MEMORY_AVAILABLE_MB": "0.01"], timeout: 30)
        XCTAssertEqual(tight.status, 1, tight.output)
        XCTAssertTrue(tight.output.contains("memory: this run needs about"), tight.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: job.root.appendingPathComponent("tight/final").path), tight.output)
    }
}
