import Foundation
import TestSupport
import XCTest

@testable import Training

/// Issue 16: with `--log-every` > 1 the console's progress line and metrics.jsonl's record for
/// the same step showed different figures (the console: rank 0's last step; the file: the
/// window average). Both now show the window average; checked on the real binary, tiny preset.
final class ConsoleMetricsAgreementTests: XCTestCase {
    /// `step 3/7 epoch 0.75 loss 0.6931 acc 0.500 margin 0.0012 tok/s 812 elapsed ...` as fields.
    private func consoleLines(_ output: String) -> [Int: [String: String]] {
        var lines: [Int: [String: String]] = [:]
        for line in output.split(separator: "\n") where line.hasPrefix("step ") {
            let words = line.split(separator: " ").map(String.init)
            guard let step = Int(words[1].split(separator: "/")[0]) else { continue }
            var fields: [String: String] = [:]
            for (index, word) in words.enumerated() where ["loss", "acc", "margin", "tok/s", "epoch"].contains(word) {
                fields[word] = words[index + 1]
            }
            lines[step] = fields
        }
        return lines
    }

    /// The console's formatting of a metrics.jsonl value (ProgressReporter's).
    private func shown(_ value: Double, _ name: String) -> String {
        switch name {
        case "loss", "margin": return String(format: "%.4f", value)
        case "acc": return String(format: "%.3f", value)
        case "epoch": return String(format: "%.2f", value)
        default: return value >= 100 ? String(Int(value.rounded())) : String(format: "%.1f", value)
        }
    }

    func testConsoleAndMetricsFileShowTheSameWindowFigures() throws {
        let job = try TrainingJobSandbox()
        let model = job.out("tiny")
        let initialised = try MPIJob.dpo(ranks: 1, ["init", "--preset", "tiny", "--out", model.path])
        XCTAssertEqual(initialised.status, 0, initialised.output)
        let run = try MPIJob.dpo(ranks: 1, ["train", "--model", model.path, "--data", job.data.path, "--out", job.out("run").path,
                                            "--batch-pairs", "2", "--max-steps", "7", "--log-every", "3", "--lr", "1e-3",
                                            "--seed", "3", "--threads", "1"])
        XCTAssertEqual(run.status, 0, run.output)
        let console = consoleLines(run.output)
        let records = try job.metrics("run").filter { $0["loss"] != nil }
        XCTAssertEqual(records.map { Int($0["step"]!) }, [3, 6, 7])
        XCTAssertEqual(console.keys.sorted(), [3, 6, 7], run.output)
        for record in records {
            let step = Int(record["step"]!)
            let line = try XCTUnwrap(console[step])
            for (field, key) in [("loss", "loss"), ("acc", "rewards/accuracies"), ("margin", "rewards/margins"),
                                 ("tok/s", "tokens_per_second"), ("epoch", "epoch")] {
                XCTAssertEqual(line[field], shown(try XCTUnwrap(record[key]), field), "step \(step) \(field):\n\(run.output)")
            }
        }
        // The same run logged every step (the schedule depends on --max-steps): its first three steps differ, and their mean is the
        // window's record, so the comparison above is of window averages, not of one step's values.
        let single = try MPIJob.dpo(ranks: 1, ["train", "--model", model.path, "--data", job.data.path, "--out", job.out("single").path,
                                               "--batch-pairs", "2", "--max-steps", "7", "--log-every", "1", "--lr", "1e-3",
                                               "--seed", "3", "--threads", "1"])
        XCTAssertEqual(single.status, 0, single.output)
        let losses = Array(try job.metrics("single").compactMap { $0["loss"] }.prefix(3))
        XCTAssertEqual(losses.count, 3)
        XCTAssertGreaterThan(Set(losses.map { String(format: "%.4f", $0) }).count, 1, "\(losses)")
        XCTAssertEqual(losses.reduce(0, +) / 3, try XCTUnwrap(records.first?["loss"]), accuracy: 1e-6)
    }
}
