import Foundation
import TestSupport
import XCTest

@testable import Training

/// Every rank reads the checkpoint it resumes from itself. A rank that sees another OUT (a
/// node-local disk, or a relative `--out` under another working directory, which the same-run
/// check cannot tell apart: the flag's text is the same) chose another checkpoint or none:
/// before, rank 0 resumed at step 2 and rank 1 started fresh, their steps mixed data of
/// different steps in one all-reduce, and the job hung at the end (the collective watchdog
/// after --collective-timeout). Now the ranks compare what they resume and all refuse at once.
final class SameResumeTests: XCTestCase {
    func testRanksThatSeeDifferentCheckpointsAreRefusedBeforeTheFirstStep() throws {
        let job = try TrainingJobSandbox()
        let here = job.out("rank0"), there = job.out("rank1")
        for directory in [here, there] { try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true) }
        // Rank 0 in `here`, rank 1 in `there`, both with `--out out` (MPMD app contexts with -wdir).
        func run(_ extra: [String]) throws -> MPIJob.Outcome {
            let arguments = ["train", "--model", job.sandbox.modelDirectory.path, "--data", job.data.path, "--out", "out",
                             "--log-every", "1", "--seed", "3", "--threads", "1", "--batch-pairs", "2", "--collective-timeout", "20"] + extra
            var mpirun = ["--oversubscribe", "--mca", "btl", "self,vader", "--mca", "mpi_yield_when_idle", "1", "--bind-to", "none"]
                + (getuid() == 0 ? ["--allow-run-as-root"] : [])
            mpirun += ["-np", "1", "-wdir", here.path, try MPIJob.dpoBinary()] + arguments
            mpirun += [":", "-np", "1", "-wdir", there.path, try MPIJob.dpoBinary()] + arguments
            return try MPIJob.run(try MPIJob.mpirun(), mpirun)
        }
        let first = try run(["--max-steps", "2"])
        XCTAssertEqual(first.status, 0, first.output)
        let final = here.appendingPathComponent("out/final")
        let saved = try Data(contentsOf: final.appendingPathComponent("model.safetensors"))

        let resumed = try run(["--max-steps", "4", "--resume", "auto"])
        XCTAssertEqual(resumed.status, 1, resumed.output)
        XCTAssertTrue(resumed.output.contains(
            "the ranks would resume from different checkpoints: rank 0 from \(final.path) at step 2, rank 1 from none (a fresh start)"),
            resumed.output)
        XCTAssertFalse(resumed.output.contains("step 3/4"), "no step ran:\n\(resumed.output)")
        XCTAssertEqual(try Data(contentsOf: final.appendingPathComponent("model.safetensors")), saved, "final/ untouched")
    }
}
