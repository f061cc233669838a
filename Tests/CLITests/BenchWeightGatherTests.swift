import Foundation
import TestSupport
import XCTest

/// `dpo bench dpo` on 2 ranks: with `--zero 1` the all-gather of the updated working weights
/// is a phase of its own (`weight_gather`, out of `optimizer`), so its cost can be read off
/// the bench; `--zero 0` gathers nothing.
final class BenchWeightGatherTests: XCTestCase {
    /// The JSON line of a 2-rank tiny bench and its phases.
    private func bench(zero: String) throws -> (json: [String: Any], phases: [String: Double]) {
        let outcome = try MPIJob.dpo(ranks: 2, [
            "bench", "dpo", "--preset", "tiny", "--batch-pairs", "1", "--seq", "16", "--steps", "1", "--threads", "1", "--zero", zero,
        ], timeout: 60)
        XCTAssertEqual(outcome.status, 0, outcome.output)
        let line = try XCTUnwrap(outcome.output.split(separator: "\n").first { $0.hasPrefix("{\"bench\"") }, outcome.output)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], String(line))
        let raw = try XCTUnwrap(json["phases_s"] as? [String: Any], String(line))
        return (json, raw.compactMapValues { $0 as? Double })
    }

    func testZeroOneTimesTheWeightGatherApartFromTheOptimizer() throws {
        let sharded = try bench(zero: "1")
        XCTAssertEqual(sharded.json["zero"] as? Int, 1)
        XCTAssertEqual(Set(sharded.phases.keys),
                       ["data", "reference_forward", "policy_forward", "backward", "allreduce_wait", "optimizer", "weight_gather"])
        // An MPI all-gather between two processes takes microseconds at least.
        XCTAssertGreaterThan(try XCTUnwrap(sharded.phases["weight_gather"]), 0, "\(sharded.phases)")
        let step = try XCTUnwrap(sharded.json["step_s"] as? Double)
        XCTAssertLessThanOrEqual(sharded.phases.values.reduce(0, +), step * 1.5 + 0.05, "phases fit in the step")

        let plain = try bench(zero: "0")
        XCTAssertEqual(plain.phases["weight_gather"], 0, "\(plain.phases)")
    }
}
