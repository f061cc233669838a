import Foundation
import TestSupport
import XCTest

/// `dpo bench dpo` samples PSS inside the timed steps where memory peaks (`step_peak_pss_mb`:
/// each policy backward's start, each `--zero 2` bucket about to go), since the PSS after the
/// step (`peak_pss_mb`) misses `--zero 2`'s gradient window, whose pages are gone by then.
final class BenchStepPeakPSSTests: XCTestCase {
    private func bench(ranks: Int, _ extra: [String]) throws -> [String: Any] {
        let outcome = try MPIJob.dpo(ranks: ranks, [
            "bench", "dpo", "--preset", "tiny", "--batch-pairs", "1", "--seq", "16", "--steps", "1", "--threads", "1",
        ] + extra, timeout: 60)
        XCTAssertEqual(outcome.status, 0, outcome.output)
        let line = try XCTUnwrap(outcome.output.split(separator: "\n").first { $0.hasPrefix("{\"bench\"") }, outcome.output)
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], String(line))
    }

    func testStepPeakPSSIsSampledInsideTheStep() throws {
        for (ranks, extra) in [(2, ["--zero", "2", "--bucket-mb", "0.01"]), (1, [])] {
            let json = try bench(ranks: ranks, extra)
            let peak = try XCTUnwrap(json["step_peak_pss_mb"] as? Double, "\(json)")
            let sampleRSS = try XCTUnwrap(json["step_peak_pss_sample_rss_mb"] as? Double, "\(json)")
            let setup = try XCTUnwrap(json["setup_pss_mb"] as? Double, "\(json)")
            XCTAssertGreaterThan(peak, 0, "\(ranks) rank(s): sampled")
            XCTAssertGreaterThanOrEqual(sampleRSS, peak, "\(ranks) rank(s): a sample's RSS counts every page its PSS shares out")
            // The activations of the step exist at the start of backward, not before the first step.
            XCTAssertGreaterThanOrEqual(peak, setup, "\(ranks) rank(s): the step's peak is above the memory before it")
        }
    }
}
