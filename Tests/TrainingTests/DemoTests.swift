import Distributed
import Foundation
import Preference
import XCTest
@testable import DPOTools
@testable import Training

/// The demo: its data, its output directory rules, and the quick demo end to end (it must
/// show an improvement of the held-out task accuracy, not only of the DPO loss).
final class DemoTests: XCTestCase {

    private func temporaryDirectory() -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("dpo-demo-\(UUID().uuidString)")
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    // MARK: - Data

    func testDataFilesHoldWhatTheStagesNeed() throws {
        var p = DemoParameters(outputDirectory: "unused")
        p.sftExamples = 200
        p.dpoPairs = 50
        p.heldOutPairs = 30
        let directory = temporaryDirectory()
        let urls = try DemoData.write(p, into: directory)
        let sft = try DatasetReader.readPreferences(from: urls.sft).examples
        let dpo = try DatasetReader.readPreferences(from: urls.dpo).examples
        let heldOut = try DatasetReader.readPreferences(from: urls.heldOut).examples
        XCTAssertEqual([sft.count, dpo.count, heldOut.count], [200, 50, 30])
        let task = DemoTask.arithmetic
        let heldOutPrompts = Set(task.heldOutPrompts(n: task.heldOutPromptCount, seed: 0))
        var wrongSFT = 0
        for example in sft {
            guard case .standard(let prompt, let chosen, _) = example else { return XCTFail("standard examples expected") }
            XCTAssertFalse(heldOutPrompts.contains(prompt))
            if !task.isCorrect(prompt: prompt, completion: chosen) { wrongSFT += 1 }
        }
        XCTAssertEqual(wrongSFT, Int((200 * p.sftWrongShare).rounded()), "the SFT answers have the configured share of wrong ones")
        for example in heldOut {
            guard case .standard(let prompt, let chosen, let rejected) = example else { return XCTFail("standard examples expected") }
            XCTAssertTrue(heldOutPrompts.contains(prompt))
            XCTAssertTrue(task.isCorrect(prompt: prompt, completion: chosen))
            XCTAssertFalse(task.isCorrect(prompt: prompt, completion: rejected))
            XCTAssertGreaterThanOrEqual(Int(rejected) ?? -1, 0)
        }
    }

    // MARK: - Output directory

    func testForeignNonEmptyDirectoryIsRefusedAndAnEarlierDemoIsReplaced() throws {
        let url = temporaryDirectory()
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        try Data("keep".utf8).write(to: url.appendingPathComponent("notes.txt"))
        XCTAssertThrowsError(try DemoRun.prepareOutputDirectory(url)) {
            XCTAssertEqual("\($0)", "output directory: \(url.path) is not empty and was not written by dpo demo; choose another --out")
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: url.appendingPathComponent("notes.txt").path))

        let earlier = temporaryDirectory()
        try DemoRun.prepareOutputDirectory(earlier)
        try Data().write(to: earlier.appendingPathComponent("stale"))
        try DemoRun.prepareOutputDirectory(earlier)
        XCTAssertFalse(FileManager.default.fileExists(atPath: earlier.appendingPathComponent("stale").path))
    }

    func testGlobalBatchMustSplitOverTheRanks() throws {
        XCTAssertEqual(try DemoParameters.perRankBatch(global: 32, worldSize: 2), 16)
        XCTAssertThrowsError(try DemoParameters.perRankBatch(global: 32, worldSize: 3)) {
            XCTAssertTrue("\($0)".contains("does not split over 3 ranks"), "\($0)")
        }
    }

    // MARK: - The quick demo end to end

    /// SFT from scratch then DPO: the held-out task accuracy must rise by at least 5 points,
    /// the DPO model must rank held-out pairs by implicit reward, and every output file exists.
    func testQuickDemoImprovesHeldOutTaskAccuracy() throws {
        let out = temporaryDirectory()
        let demo = DemoRun(parameters: .quick(outputDirectory: out.path), communicator: SingleProcessCommunicator())
        let report = try demo.run()
        print(report.lines.joined(separator: "\n"))
        XCTAssertGreaterThanOrEqual(report.dpo.heldOutAccuracy, report.sft.heldOutAccuracy + 0.05,
                                    "DPO must improve the held-out task accuracy")
        XCTAssertGreaterThanOrEqual(report.dpo.trainAccuracy, report.sft.trainAccuracy)
        XCTAssertGreaterThan(report.dpo.heldOutRewardAccuracy, 0.8)
        XCTAssertEqual(report.sft.heldOutRewardAccuracy, 0, "the reference against itself has rewards of 0")
        XCTAssertGreaterThan(report.dpo.heldOutPreferenceAccuracy, report.sft.heldOutPreferenceAccuracy - 1e-9)
        for path in ["demo_report.json", "demo_report.md", "plots/demo.svg", "plots/demo.png", "sft/final/model.safetensors",
                     "dpo/final/model.safetensors", "dpo/metrics.jsonl", "data/dpo_pairs.jsonl"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent(path).path), path)
        }
        let decoded = try JSONDecoder().decode(DemoReport.self, from: Data(contentsOf: out.appendingPathComponent("demo_report.json")))
        XCTAssertEqual(decoded.dpo.heldOutAccuracy, report.dpo.heldOutAccuracy)
        try checkMetricFiles(of: out.appendingPathComponent("dpo"))
    }

    /// metrics.jsonl and the TensorBoard event file of the DPO run hold the TRL tags at the same steps
    /// (read back by the test's own event-file reader).
    private func checkMetricFiles(of run: URL) throws {
        let log = try MetricsLog.read(run.appendingPathComponent("metrics.jsonl"))
        let trainNames = ["loss", "rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins", "logps/chosen",
                          "logps/rejected", "logits/chosen", "logits/rejected", "grad_norm", "learning_rate", "epoch"]
        let evalNames = ["eval_loss", "eval_rewards/chosen", "eval_rewards/rejected", "eval_rewards/accuracies", "eval_rewards/margins"]
        for name in trainNames + evalNames { XCTAssertTrue(log.names.contains(name), "metrics.jsonl lacks \(name)") }
        let directory = run.appendingPathComponent("tensorboard")
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasPrefix("events.out.tfevents.") }
        XCTAssertEqual(files.count, 1)
        let events = try EventFileReader.events(directory.appendingPathComponent(files[0]))
        var tagsByStep: [Int64: Set<String>] = [:]
        for event in events { tagsByStep[event.step, default: []].formUnion(event.scalars.map(\.tag)) }
        for record in log.records {
            let tags = tagsByStep[Int64(record.step)] ?? []
            for (name, _) in record.metrics { XCTAssertTrue(tags.contains(name), "step \(record.step): TensorBoard lacks \(name)") }
        }
        let lastStep = Int64(log.records.last!.step)
        XCTAssertEqual(tagsByStep.keys.max(), lastStep)
    }
}
