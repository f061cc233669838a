import Foundation
import Preference
import TestSupport
import XCTest

@testable import Training

/// Issue 16: `dpo score` by default scores each held-out prompt once (the arithmetic task has
/// 64, and the old default `--n 80` scored 16 of them twice), and `--help`, the README and the
/// printed JSON say the same thing about what `n` counts.
final class ScoreHeldOutCountTests: XCTestCase {
    private var distinct: Int { DemoTask.arithmetic.heldOutPromptCount }

    private func json(_ output: String) throws -> [String: Any] {
        let line = try XCTUnwrap(output.split(separator: "\n").last(where: { $0.hasPrefix("{") }), output)
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], output)
    }

    func testTheDefaultScoresEachHeldOutPromptOnce() throws {
        let job = try TrainingJobSandbox()
        let scored = try MPIJob.dpo(ranks: 1, ["score", "--model", job.sandbox.modelDirectory.path, "--verbose"], timeout: 60)
        XCTAssertEqual(scored.status, 0, scored.output)
        let prompts = scored.output.split(separator: "\n").filter { $0.hasPrefix("ok  ") || $0.hasPrefix("bad ") }
            .map { $0.split(separator: " ", omittingEmptySubsequences: true)[1] }
        XCTAssertEqual(prompts.count, distinct, scored.output)
        XCTAssertEqual(Set(prompts).count, distinct, "a held-out prompt was scored twice: \(scored.output)")
        let result = try json(scored.output)
        XCTAssertEqual(result["n"] as? Int, distinct, scored.output)
        XCTAssertEqual(result["distinct"] as? Int, distinct, scored.output)

        // Past the distinct count prompts repeat, and the output says how many were distinct.
        let more = try MPIJob.dpo(ranks: 1, ["score", "--model", job.sandbox.modelDirectory.path, "--n", "\(distinct + 6)"], timeout: 60)
        XCTAssertEqual(more.status, 0, more.output)
        XCTAssertEqual(try json(more.output)["n"] as? Int, distinct + 6, more.output)
        XCTAssertEqual(try json(more.output)["distinct"] as? Int, distinct, more.output)
    }

    /// `--help` and the README state the default as the distinct held-out prompts (64), not 80.
    func testHelpAndReadmeSayWhatNCounts() throws {
        let help = try MPIJob.dpo(ranks: 1, ["score", "--help"])
        XCTAssertEqual(help.status, 0, help.output)
        let flat = help.output.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        XCTAssertTrue(flat.contains("by default each of the \(distinct) held-out prompts once"), flat)
        XCTAssertTrue(flat.contains("(default: \(distinct))"), flat)
        XCTAssertFalse(flat.contains("default: 80"), flat)
        let readme = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("README.md")
        let text = try String(contentsOf: readme, encoding: .utf8)
        let usage = try XCTUnwrap(text.split(separator: "\n").first { $0.hasPrefix("dpo score --model DIR") })
        XCTAssertFalse(usage.contains("--n 80"), String(usage))
        XCTAssertTrue(text.contains(#""distinct":\#(distinct)"#), "the README's example output shows no distinct count")
    }
}
