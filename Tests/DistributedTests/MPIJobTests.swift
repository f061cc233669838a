import Foundation
import XCTest

/// Two-rank jobs of the built `dpo` binary under `mpirun`: every collective with known
/// answers, a killed rank, a throwing rank, and a clean stop on SIGTERM to the launcher.
/// Each job must end within 30 seconds; a job that does not is killed and the test fails.
final class MPIJobTests: XCTestCase {
    struct Outcome {
        var status: Int32
        var output: String
        var seconds: Double
        var timedOut: Bool
    }

    /// Directory of the test bundle (`.build/<triple>/<config>`), where `dpo` is built too.
    static var buildDirectory: URL {
        URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
    }

    static var packageRoot: URL? {
        var directory = buildDirectory
        while directory.path != "/" {
            if FileManager.default.fileExists(atPath: directory.appendingPathComponent("Package.swift").path) { return directory }
            directory.deleteLastPathComponent()
        }
        return nil
    }

    func dpoBinary() throws -> String {
        let path = Self.buildDirectory.appendingPathComponent("dpo").path
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw XCTSkip("the dpo binary is not built next to the tests (\(path)); build it with `swift build --build-tests` "
                + "(launch/test.sh does) to run the 2-rank MPI tests")
        }
        return path
    }

    func mpirun() throws -> String {
        for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":") + ["/usr/bin"] {
            let path = "\(directory)/mpirun"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        XCTFail("mpirun is not installed (Debian: apt-get install openmpi-bin); the 2-rank tests cannot run")
        throw XCTSkip("no mpirun")
    }

    var environment: [String: String] {
        var environment = ProcessInfo.processInfo.environment
        environment["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
        environment["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
        return environment
    }

    /// Runs a process to completion (or kills it after `timeout` seconds), output merged.
    /// `whileRunning` is called every 50 ms with the output so far and the process.
    func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil, timeout: Double = 30,
             whileRunning: ((String, Process) -> Void)? = nil) throws -> Outcome {
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("mpijob-\(UUID().uuidString).log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: log) }
        let handle = try FileHandle(forWritingTo: log)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = environment ?? self.environment
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        let start = Date()
        try process.run()
        var timedOut = false
        while process.isRunning {
            if Date().timeIntervalSince(start) > timeout {
                // SIGTERM (twice: the launch script's second one reaches mpirun, which then
                // ends its ranks), SIGKILL if that is not enough.
                timedOut = true
                for _ in 0..<2 where process.isRunning {
                    kill(process.processIdentifier, SIGTERM)
                    Thread.sleep(forTimeInterval: 1.5)
                }
                if process.isRunning { kill(process.processIdentifier, SIGKILL) }
                break
            }
            whileRunning?((try? String(contentsOf: log, encoding: .utf8)) ?? "", process)
            Thread.sleep(forTimeInterval: 0.05)
        }
        process.waitUntilExit()
        try handle.close()
        let output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        return Outcome(status: process.terminationStatus, output: output, seconds: Date().timeIntervalSince(start), timedOut: timedOut)
    }

    func mpirunTwoRanks(_ dpoArguments: [String]) throws -> Outcome {
        let arguments = ["-np", "2", "--oversubscribe", "--mca", "btl", "self,vader", "--bind-to", "none"]
            + (getuid() == 0 ? ["--allow-run-as-root"] : []) + [try dpoBinary()] + dpoArguments
        return try run(try mpirun(), arguments)
    }

    // MARK: - Collectives

    func testEveryCollectiveOnTwoRanks() throws {
        let outcome = try mpirunTwoRanks(["mpi-check"])
        XCTAssertFalse(outcome.timedOut, "mpi-check hung:\n\(outcome.output)")
        XCTAssertEqual(outcome.status, 0, outcome.output)
        for check in ["world: 2 rank(s)", "broadcast", "all-gather", "all-reduce fp32", "all-reduce fp64/int64",
                      "all-reduce fp16", "non-blocking overlap", "reducer fp32", "reducer fp16",
                      "reducer inf/NaN agreement", "parameter broadcast and consistency: one-ulp difference on rank 1 detected",
                      "same run: binary"] {
            XCTAssertTrue(outcome.output.contains("ok  \(check)"), "missing '\(check)' in:\n\(outcome.output)")
        }
        XCTAssertTrue(outcome.output.contains("all checks passed on 2 rank(s)"), outcome.output)
        XCTAssertEqual(outcome.output.components(separatedBy: "ok  world").count, 2, "only rank 0 prints")
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
        XCTAssertLessThan(outcome.seconds, 30)
        XCTAssertTrue(outcome.output.contains("rank 1"), "the dead rank is not named:\n\(outcome.output)")
    }

    func testThrowingRankAbortsTheJobWithItsMessage() throws {
        let outcome = try mpirunTwoRanks(["mpi-check", "--skip-checks", "--throw-on-rank", "1"])
        XCTAssertFalse(outcome.timedOut, "job hung after rank 1 threw:\n\(outcome.output)")
        XCTAssertNotEqual(outcome.status, 0, outcome.output)
        XCTAssertLessThan(outcome.seconds, 30)
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
