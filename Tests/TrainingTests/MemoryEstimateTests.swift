import Foundation
import TestSupport
import XCTest

@testable import Training

/// The start-up summary's "peak memory/rank" estimate against the peak RSS the same run
/// measured (the real binary, so nothing else shares the process): within 25%.
final class MemoryEstimateTests: XCTestCase {
    func testEstimatedPeakMemoryIsWithinAQuarterOfTheMeasuredPeak() throws {
        try checkEstimate(extraArguments: [])
    }

    /// The same with `--gradient-checkpointing true` (its activations are the smaller arena's).
    func testEstimateWithGradientCheckpointingIsWithinAQuarterOfTheMeasuredPeak() throws {
        try checkEstimate(extraArguments: ["--gradient-checkpointing", "true"])
    }

    /// Two ranks, fp16, `--zero 1`, the host's shared reference: the shard, the fp16 gradient
    /// staging slots (two buckets) and the logged step's `logits/*` panel are what the estimate counts.
    func testEstimateOnTwoRanksWithZeroOneInFP16IsWithinAQuarterOfTheMeasuredPeak() throws {
        // A vocabulary twice as large: sharded and in fp16, the model must still dwarf the runtime.
        try checkEstimate(extraArguments: ["--precision", "fp16", "--zero", "1"], ranks: 2, vocabSize: 80_000)
    }

    /// `--zero 2`: the gradient shard, the window pages backward holds at once (a bucket or a
    /// layer's group; a tied head goes a bucket at a time too) and the staging slots.
    func testEstimateOnTwoRanksWithZeroTwoInFP16IsWithinAQuarterOfTheMeasuredPeak() throws {
        try checkEstimate(extraArguments: ["--precision", "fp16", "--zero", "2"], ranks: 2, vocabSize: 80_000)
    }

    func checkEstimate(extraArguments: [String], ranks: Int = 1, vocabSize: Int = 40_000) throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("memory-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        // A model whose weights and logits are large next to the runtime (~10M parameters, vocab 40000).
        let model = root.appendingPathComponent("model").path
        let initialized = try MPIJob.dpo(ranks: 1, ["init", "--preset", "small", "--vocab-size", "\(vocabSize)", "--out", model])
        XCTAssertEqual(initialized.status, 0, initialized.output)
        var lines = ""
        for i in 0..<4 {
            func text(_ n: Int, _ salt: Int) -> String { String((0..<n).map { Character(UnicodeScalar(UInt8(97 + (i * 7 + $0 * 3 + salt) % 26))) }) }
            let record = ["prompt": text(64, 0), "chosen": text(120, 1), "rejected": text(120, 2)]
            lines += String(decoding: try JSONSerialization.data(withJSONObject: record, options: [.sortedKeys]), as: UTF8.self) + "\n"
        }
        let data = root.appendingPathComponent("pairs.jsonl")
        try lines.write(to: data, atomically: true, encoding: .utf8)
        let outcome = try MPIJob.dpo(ranks: ranks, ["train", "--model", model, "--data", data.path, "--out", root.appendingPathComponent("out").path,
                                                "--batch-pairs", "2", "--max-steps", "2", "--threads", "1", "--share-prompt", "false"] + extraArguments,
                                     timeout: 120)
        XCTAssertEqual(outcome.status, 0, outcome.output)
        let estimate = try XCTUnwrap(mebibytes(after: "peak memory/rank  ~", in: outcome.output), outcome.output)
        let measured = try XCTUnwrap(mebibytes(after: "peak RSS ", in: outcome.output), outcome.output)
        XCTAssertGreaterThan(measured, 200, "the run is too small to test the estimate:\n\(outcome.output)")
        XCTAssertLessThan(abs(estimate - measured) / measured, 0.25, "estimate \(estimate) MiB, measured \(measured) MiB:\n\(outcome.output)")
    }

    /// "123.4 MiB" or "1.20 GiB" right after `prefix`, in MiB.
    func mebibytes(after prefix: String, in text: String) -> Double? {
        guard let range = text.range(of: prefix) else { return nil }
        let words = text[range.upperBound...].split(separator: " ", maxSplits: 2)
        guard words.count >= 2, let value = Double(words[0]) else { return nil }
        switch words[1].prefix(3) {
        case "KiB": return value / 1024
        case "MiB": return value
        case "GiB": return value * 1024
        default: return nil
        }
    }
}
