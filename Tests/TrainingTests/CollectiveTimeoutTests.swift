import Foundation
import TestSupport
import XCTest

@testable import Training

/// `dpo train --collective-timeout` on 2 ranks of this host: a rank that stops answering
/// (DPO_FAULT_INJECT delays rank 1's step 3 by 60 s) ends the job with exit status 76 after
/// the timeout, naming the step and the rank waited for, with the newest checkpoint complete;
/// a limit above the slowest step changes nothing.
final class CollectiveTimeoutTests: XCTestCase {
    func testARankThatStopsAnsweringEndsTheJobWithStatus76() throws {
        let job = try TrainingJobSandbox()
        let arguments = ["--batch-pairs", "2", "--max-steps", "6", "--save-every", "1", "--lr", "1e-3", "--collective-timeout", "2"]
        let outcome = try job.train(ranks: 2, out: "stuck", arguments, faults: "delay:rank=1:step=3:ms=60000")
        XCTAssertFalse(outcome.timedOut, "the job hung:\n\(outcome.output)")
        XCTAssertEqual(outcome.status, 76, outcome.output)
        // The watchdog's own figure, not the job's wall time (start-up under load is no concern
        // here): it fired at its limit, long before rank 1 would have answered (60 s).
        let waited = try XCTUnwrap(Self.secondsWaited(in: outcome.output), outcome.output)
        XCTAssertGreaterThanOrEqual(waited, 2, outcome.output)
        XCTAssertLessThan(waited, 60, outcome.output)
        XCTAssertTrue(outcome.output.contains("rank 0 (host "), outcome.output)
        XCTAssertTrue(outcome.output.contains("in step 3 has not completed after"), outcome.output)
        XCTAssertTrue(outcome.output.contains("(--collective-timeout 2 s); it waits for rank 1 (host "), outcome.output)
        var skipped: [String] = []
        let newest = CheckpointStore(outputDirectory: job.out("stuck")).newestComplete(skipped: &skipped)
        XCTAssertEqual(skipped, [])
        XCTAssertEqual(newest?.manifest.step, 2)
    }

    /// N of the watchdog's "has not completed after N s".
    static func secondsWaited(in output: String) -> Int? {
        output.components(separatedBy: "has not completed after ").dropFirst().first.flatMap { Int($0.prefix { $0.isNumber }) }
    }

    func testALimitAboveTheSlowestStepChangesNothing() throws {
        let job = try TrainingJobSandbox()
        let common = ["--batch-pairs", "2", "--max-steps", "3", "--lr", "1e-3"]
        try job.trainSucceeding(ranks: 2, out: "plain", common + ["--collective-timeout", "0"])
        // Rank 1 is 500 ms late at step 2: rank 0 waits that long in a collective, under the 5 s limit.
        try job.trainSucceeding(ranks: 2, out: "watched", common + ["--collective-timeout", "5"], faults: "delay:rank=1:step=2:ms=500")
        XCTAssertEqual(try job.masterWeights("watched"), try job.masterWeights("plain"))
    }
}
