import Foundation
import TestSupport
import XCTest

@testable import Training

/// Issue 16's "global batch 100000 pairs for 200 pairs": the printed batch was fixed, but the
/// fit check (which runs before the data is read) still estimated the batch asked for, so
/// `--batch-pairs 100000` on 8 pairs was refused as needing terabytes. It now estimates at most
/// the pairs the data file can hold per rank, the batch that runs.
final class FitCheckBatchBoundTests: XCTestCase {
    func testABatchLargerThanTheDataIsEstimatedAsTheBatchThatRuns() throws {
        let job = try TrainingJobSandbox()
        let run = try job.train(ranks: 1, out: "run", ["--batch-pairs", "100000", "--max-steps", "1"])
        XCTAssertEqual(run.status, 0, run.output)
        XCTAssertFalse(run.output.contains("memory:"), run.output)
        XCTAssertTrue(run.output.contains("global batch      8 pairs: all 8 train pairs each step"), run.output)
        // A batch that truly does not fit is still refused (rows of 1M tokens: --max-length drives the estimate).
        let huge = try job.train(ranks: 1, out: "huge", ["--batch-pairs", "8", "--max-length", "100000000", "--max-prompt-length", "8"])
        XCTAssertEqual(huge.status, 1, huge.output)
        XCTAssertTrue(huge.output.contains("memory: this run needs about"), huge.output)
    }
}
