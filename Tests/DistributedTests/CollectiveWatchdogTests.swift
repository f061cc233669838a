import Foundation
import TestSupport
import XCTest

@testable import Distributed

/// The collective watchdog: when its message is due and what it names (no threads, a given
/// clock), and a 2-rank job where one rank stops answering ending with exit status 76.
final class CollectiveWatchdogTests: XCTestCase {

    func testAnOverdueCollectiveNamesTheCallTheStepAndThePeers() throws {
        // The step is process-wide (in-process trainer tests set it too): 0 = start-up.
        let previous = CollectiveWatchdog.step
        defer { CollectiveWatchdog.step = previous }
        CollectiveWatchdog.step = 0
        let watchdog = CollectiveWatchdog()
        let start = ContinuousClock.now
        XCTAssertNil(watchdog.overdue(at: start + .seconds(1000)), "not armed: nothing is due")
        watchdog.configure(timeout: 10, rank: 1, hosts: ["node-a", "node-b", "node-c"])
        XCTAssertNil(watchdog.overdue(at: start + .seconds(1000)), "no collective in progress")

        watchdog.enter("MPI_Allreduce(float)", at: start)
        XCTAssertNil(watchdog.overdue(at: start + .seconds(10)), "exactly the timeout is not overdue")
        let message = try XCTUnwrap(watchdog.overdue(at: start + .milliseconds(12_400)))
        XCTAssertTrue(message.hasPrefix("rank 1 (host node-b): collective MPI_Allreduce(float) in start-up (before the first step) "
                                        + "has not completed after 12 s (--collective-timeout 10 s)"), message)
        XCTAssertTrue(message.contains("it waits for rank 0 (host node-a), rank 2 (host node-c): one or more of them is lost"), message)
        XCTAssertTrue(message.contains("exit status 76"), message)

        watchdog.leave()
        XCTAssertNil(watchdog.overdue(at: start + .seconds(1000)), "the collective completed")
        watchdog.enter("MPI_Barrier", at: start + .seconds(990))
        XCTAssertNil(watchdog.overdue(at: start + .seconds(1000)), "a new collective starts its own clock")
        watchdog.stop()
        XCTAssertNil(watchdog.overdue(at: start + .seconds(5000)), "disarmed")
    }

    func testTheStepAndASinglePeerAreNamed() throws {
        let watchdog = CollectiveWatchdog()
        watchdog.configure(timeout: 0.5, rank: 0, hosts: ["h1", "h2"])
        let start = ContinuousClock.now
        watchdog.enter("MPI_Wait(MPI_Iallreduce(half))", at: start)
        // The step is process-wide: the trainer sets it at the start of each step.
        let previous = CollectiveWatchdog.step
        defer { CollectiveWatchdog.step = previous }
        CollectiveWatchdog.step = 7
        XCTAssertNil(watchdog.overdue(at: start + .milliseconds(400)))
        let message = try XCTUnwrap(watchdog.overdue(at: start + .seconds(2)))
        XCTAssertTrue(message.contains("rank 0 (host h1): collective MPI_Wait(MPI_Iallreduce(half)) in step 7 has not completed after 2 s"), message)
        XCTAssertTrue(message.contains("(--collective-timeout 0.5 s); it waits for rank 1 (host h2), which is lost"), message)
    }

    /// Rank 1 sleeps in step 2 of mpi-check's simulated loop; rank 0 waits in the all-reduce
    /// until its watchdog (2 s) ends the job: exit status 76, the message on rank 0.
    func testAStalledRankEndsTheJobWithExitStatus76() throws {
        let outcome = try MPIJob.mpirunTwoRanks(["mpi-check", "--skip-checks", "--steps", "5", "--step-ms", "50",
                                                 "--stall-on-rank", "1", "--collective-timeout", "2"])
        XCTAssertFalse(outcome.timedOut, "the job hung:\n\(outcome.output)")
        // Rank 1 sleeps for an hour: status 76 can only come from the watchdog (no duration is
        // asserted; the job's wall time under load says nothing about the watchdog).
        XCTAssertEqual(outcome.status, CollectiveWatchdog.exitCode, outcome.output)
        XCTAssertTrue(outcome.output.contains("step 1 done"), outcome.output)
        XCTAssertFalse(outcome.output.contains("step 2 done"), outcome.output)
        XCTAssertTrue(outcome.output.contains("rank 0 (host "), outcome.output)
        XCTAssertTrue(outcome.output.contains("collective MPI_Allreduce(float) in step 2 has not completed after"), outcome.output)
        XCTAssertTrue(outcome.output.contains("it waits for rank 1 (host "), outcome.output)
    }
}
