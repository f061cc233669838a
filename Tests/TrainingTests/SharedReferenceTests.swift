import Foundation
import Llama
import TestSupport
import XCTest

@testable import Training

/// `--shared-reference` on 2 ranks of one host: one copy of the reference mapped from /dev/shm
/// gives the same run, bit for bit, as private references; nothing is left in /dev/shm, also
/// when a rank is killed.
final class SharedReferenceTests: XCTestCase {
    func leftovers() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: HostSharedReference.directory).filter { $0.hasPrefix(HostSharedReference.namePrefix) }
    }

    func testSharedReferenceRunIsBitIdenticalToPrivateReferences() throws {
        let before = try leftovers()
        let job = try TrainingJobSandbox()
        for precision in ["fp32", "fp16"] {
            let common = ["--lr", "1e-3", "--max-steps", "3", "--batch-pairs", "2", "--precision", precision]
            let shared = try job.trainSucceeding(ranks: 2, out: "shared-\(precision)", common + ["--shared-reference", "true"])
            XCTAssertTrue(shared.output.contains("reference: one \(precision) copy per host, shared by 2 ranks"), shared.output)
            let own = try job.trainSucceeding(ranks: 2, out: "private-\(precision)", common + ["--shared-reference", "false"])
            XCTAssertFalse(own.output.contains("shared by 2 ranks"), own.output)
            // The rewards are beta x (policy - reference) log-probs: equal series mean equal reference log-probs.
            for name in ["rewards/chosen", "rewards/rejected", "loss"] {
                let a = try job.series(name, "shared-\(precision)"), b = try job.series(name, "private-\(precision)")
                XCTAssertEqual(a.count, 3, name)
                XCTAssertEqual(a, b, "\(precision) \(name)")
            }
            XCTAssertNotEqual(try job.series("rewards/chosen", "shared-\(precision)").last, 0)
            XCTAssertEqual(try job.masterWeights("shared-\(precision)").map(\.bitPattern), try job.masterWeights("private-\(precision)").map(\.bitPattern))
        }
        XCTAssertEqual(try leftovers(), before, "nothing left in \(HostSharedReference.directory)")
    }

    func testKilledRankLeavesNothingInDevShm() throws {
        let before = try leftovers()
        let job = try TrainingJobSandbox()
        let outcome = try job.train(ranks: 2, out: "killed", ["--max-steps", "4", "--batch-pairs", "2"], faults: "kill:rank=1:step=2")
        XCTAssertNotEqual(outcome.status, 0, outcome.output)
        XCTAssertTrue(outcome.output.contains("shared by 2 ranks"), outcome.output)
        XCTAssertEqual(try leftovers(), before, "nothing left in \(HostSharedReference.directory):\n\(outcome.output)")
    }
}
