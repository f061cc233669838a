import Foundation
import TestSupport
import XCTest

/// Two-rank jobs of the built `dpo` binary under `mpirun`: every collective with known
/// answers, a killed rank, a throwing rank, and a clean stop on SIGTERM to the launcher.
/// A job must end by itself (mpi-check runs no collective watchdog: a fault that is not
/// noticed leaves the job waiting forever); one still running after `MPIJob.hangLimit` is
/// killed and the test fails.
/// (The process helpers live in TestSupport/MPIJob.swift, shared with the trainer's multi-rank tests.)
final class MPIJobTests: XCTestCase {
    typealias Outcome = MPIJob.Outcome

    static var packageRoot: URL? { MPIJob.packageRoot }
    static var buildDirectory: URL { MPIJob.buildDirectory }
    func dpoBinary() throws -> String { try MPIJob.dpoBinary() }
    var environment: [String: String] { MPIJob.environment }

    func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil, timeout: Double = MPIJob.hangLimit,
             whileRunning: ((String, Process) -> Void)? = nil) throws -> Outcome {
        try MPIJob.run(executable, arguments, environment: environment, timeout: timeout, whileRunning: whileRunning)
    }

    func mpirunTwoRanks(_ dpoArguments: [String]) throws -> Outcome { try MPIJob.mpirunTwoRanks(dpoArguments) }

    // MARK: - Collectives

    func testEveryCollectiveOnTwoRanks() throws {
        let outcome = try mpirunTwoRanks(["mpi-check"])
        XCTAssertFalse(outcome.timedOut, "mpi-check hung:\n\(outcome.output)")
        XCTAssertEqual(outcome.status, 0, outcome.output)
        for check in ["world: 2 rank(s)", "broadcast", "all-gather", "all-reduce fp32", "all-reduce fp64/int64",
                      "all-reduce fp16", "non-blocking overlap", "reducer fp32", "reducer fp16",
                      "reducer inf/NaN agreement", "reduce-scatter and in-place all-gather", "sharded reducer fp32",
                      "sharded reducer fp16", "parameter broadcast and consistency: one-ulp difference on rank 1 detected",
                      "same run: binary"] {
            XCTAssertTrue(outcome.output.contains("ok  \(check)"), "missing '\(check)' in:\n\(outcome.output)")
        }
        XCTAssertTrue(outcome.output.contains("all checks passed on 2 rank(s)"), outcome.output)
        XCTAssertEqual(outcome.output.components(separatedBy: "ok  world").count, 2, "only rank 0 prints")
        // One host: both ranks name world rank 0 as their host's first rank (the shared reference's creator).
        XCTAssertTrue(outcome.output.contains("ok  world: 2 rank(s); node rank 0 of 2; host leader of each rank: 0 0\n"), outcome.output)
    }

    func testAloneRunsAsOneRankWithoutMPI() throws {
        let outcome = try run(try dpoBinary(), ["mpi-check"], environment: ProcessInfo.processInfo.environment
            .filter { !$0.key.hasPrefix("OMPI_") && !$0.key.hasPrefix("PMI") })
        XCTAssertEqual(outcome.status, 0, outcome.output)
        XCTAssertTrue(outcome.output.contains("world: 1 rank(s)"), outcome.output)
        XCTAssertTrue(outcome.output.contains("all checks passed on 1 rank(s)"), outcome.output)
    }

    // MARK: - Faults

    func testKilledRankEndsTheJobWithItsRankNamed() throws {
        let outcome = try mpirunTwoRanks(["mpi-check", "--skip-checks", "--die-on-rank", "1"])
        XCTAssertFalse(outcome.timedOut, "job hung after rank 1 was killed:\n\(outcome.output)")
        XCTAssertNotEqual(outcome.status, 0, outcome.output)
        XCTAssertTrue(outcome.output.contains("rank 1"), "the dead rank is not named:\n\(outcome.output)")
    }

    func testThrowingRankAbortsTheJobWithItsMessage() throws {
        let outcome = try mpirunTwoRanks(["mpi-check", "--skip-checks", "--throw-on-rank", "1"])
        XCTAssertFalse(outcome.timedOut, "job hung after rank 1 threw:\n\(outcome.output)")
        XCTAssertNotEqual(outcome.status, 0, outcome.output)
        XCTAssertTrue(outcome.output.contains("rank 1: mpi-check fault injection failed: error thrown on purpose"), outcome.output)
    }

    // MARK: - Stopping

    /// SIGTERM to launch/local.sh: the ranks finish the step in progress, agree, and exit 0.
    func testSigtermToLauncherStopsAfterTheCurrentStep() throws {
        guard let root = Self.packageRoot else { throw XCTSkip("package root not found above \(Self.buildDirectory.path)") }
        let script = root.appendingPathComponent("launch/local.sh").path
        var environment = self.environment
        environment["DPO_BIN"] = try dpoBinary()
        var signalled = false
        let outcome = try run("/bin/bash", [script, "-n", "2", "--", "mpi-check", "--skip-checks", "--steps", "100", "--step-ms", "150"],
                              environment: environment) { output, process in
            if !signalled && output.contains("step 2 done") {
                signalled = true
                kill(process.processIdentifier, SIGTERM)
            }
        }
        XCTAssertTrue(signalled, "the job never reached step 2:\n\(outcome.output)")
        XCTAssertFalse(outcome.timedOut, outcome.output)
        XCTAssertEqual(outcome.status, 0, outcome.output)
        XCTAssertTrue(outcome.output.contains("stopped cleanly after step"), outcome.output)
        XCTAssertFalse(outcome.output.contains("step 100 done"), "the ranks ran to the end instead of stopping:\n\(outcome.output)")
    }
}
