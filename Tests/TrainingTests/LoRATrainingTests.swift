import Distributed
import Foundation
import Llama
import Preference
import TestSupport
import XCTest

@testable import Training

/// `dpo train --lora-r`: PEFT-format output, exact resume, the precomputed base reference,
/// continuing an adapter, merging, and the refusals.
final class LoRATrainingTests: XCTestCase {
    static let sixPairs = TrainerSandbox.arithmetic + [("5+1=", "6", "7"), ("9-3=", "6", "5")]

    func loraParameters(_ sandbox: TrainerSandbox, data: URL, out: String) -> TrainingParameters {
        var p = sandbox.parameters(data: data, out: out)
        p.loraRank = 4
        p.learningRate = 1e-2
        p.batchPairs = 2
        p.maxSteps = 6
        return p
    }

    /// final/ is a PEFT adapter (no full model), holding the trained adapters; the margins grow.
    func testRunWritesAPEFTAdapterAndLearns() throws {
        let sandbox = try TrainerSandbox()
        let data = try sandbox.writePairs("train.jsonl", Self.sixPairs)
        var p = loraParameters(sandbox, data: data, out: "out")
        p.evalDataFile = data.path
        p.evalEvery = 3
        let (summary, sink) = try sandbox.train(p)
        // Evaluation against the base reference: at step 3 the policy already prefers the chosen.
        let evalMargins = sink.series("eval_rewards/margins")
        XCTAssertEqual(evalMargins.count, 2, "\(sink.records)")
        XCTAssertGreaterThan(evalMargins.last ?? 0, 0)
        let final = try XCTUnwrap(summary.savedDirectory)
        let files = try FileManager.default.contentsOfDirectory(atPath: final.path)
        for name in ["adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "base_config.json", "trainer_state.json"] {
            XCTAssertTrue(files.contains(name), "\(name) missing: \(files)")
        }
        XCTAssertFalse(files.contains("model.safetensors"))
        XCTAssertFalse(files.contains("config.json"), "a config.json would make transformers load final/ as a full model")
        let loaded = try LoRAAdapterDirectory.load(final, model: TrainerSandbox.tinyConfig)
        XCTAssertEqual(loaded.config, LoRAConfig(rank: 4, alpha: 8, targets: LoRAModule.allCases))
        XCTAssertEqual(loaded.values, try TrainerSandbox.masterWeights(final))
        XCTAssertEqual(loaded.baseModel, URL(fileURLWithPath: p.modelDirectory).standardizedFileURL.path)
        // dpo eval --adapter (reference: the base) reproduces the trainer's last evaluation.
        var eval = ScoringReports.EvalOptions(modelDirectory: p.modelDirectory, dataFile: data.path)
        eval.adapterDirectory = final.path
        let line = try ScoringReports.evaluate(eval, communicator: SingleProcessCommunicator())
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        let evalLoss = try XCTUnwrap(object["eval_loss"] as? Double), trainerEvalLoss = try XCTUnwrap(sink.series("eval_loss").last)
        XCTAssertEqual(evalLoss, trainerEvalLoss, accuracy: 1e-5 * abs(trainerEvalLoss), line)
        let margins = sink.series("rewards/margins")
        XCTAssertEqual(margins.first ?? 1, 0, accuracy: 1e-7, "step 1 starts at the base model (B = 0)")
        XCTAssertGreaterThan(margins.last ?? 0, 0.01, "\(margins)")
    }

    /// 6 steps straight and 3 + resume + 3 give bit-identical adapters and metrics (fp32, fp16).
    func testResumeIsBitIdentical() throws {
        for precision in Precision.allCases {
            let sandbox = try TrainerSandbox()
            let data = try sandbox.writePairs("train.jsonl", Self.sixPairs)
            var p = loraParameters(sandbox, data: data, out: "straight")
            p.precision = precision
            p.gradAccum = 2
            p.batchPairs = 1
            p.saveEvery = 3
            let (straight, straightSink) = try sandbox.train(p)
            var first = p
            first.outputDirectory = sandbox.root.appendingPathComponent("resumed").path
            var stepsDone = 0
            let (stopped, _) = try sandbox.train(first) { trainer in
                trainer.onProgress = { stepsDone = $0.step }
                trainer.shouldStop = { stepsDone == 3 }
            }
            XCTAssertEqual(stopped.finalStep, 3)
            var second = first
            second.resume = "auto"
            let (resumed, resumedSink) = try sandbox.train(second)
            XCTAssertEqual(resumed.startStep, 3)
            let a = try TrainerSandbox.masterWeights(straight.savedDirectory!), b = try TrainerSandbox.masterWeights(resumed.savedDirectory!)
            XCTAssertEqual(a, b, "\(precision): bit-identical adapters")
            XCTAssertEqual(Array(straightSink.series("loss").suffix(3)), resumedSink.series("loss"), "\(precision)")
            // The run trained the adapters: every B left zero.
            let saved = try LoRAAdapterDirectory.load(straight.savedDirectory!, model: TrainerSandbox.tinyConfig)
            let layout = LoRALayout(model: TrainerSandbox.tinyConfig, lora: saved.config)
            for entry in layout.entries where entry.isB { XCTAssertGreaterThan(maxAbs(Array(saved.values[entry.range])), 0, entry.name) }
        }
    }

    /// --precompute-ref of the base (adapters off) gives the live reference's loss curve.
    func testPrecomputedBaseReferenceMatchesLive() throws {
        let sandbox = try TrainerSandbox()
        let data = try sandbox.writePairs("train.jsonl", Self.sixPairs)
        let live = try sandbox.train(loraParameters(sandbox, data: data, out: "live")).1.series("loss")
        var p = loraParameters(sandbox, data: data, out: "cached")
        p.precomputeReference = true
        let cached = try sandbox.train(p).1.series("loss")
        XCTAssertEqual(live.count, 6)
        for (x, y) in zip(live, cached) { XCTAssertEqual(x, y, accuracy: 1e-6 * max(1, abs(x))) }
    }

    /// --adapter continues an adapter: with lr 0 the adapter comes out unchanged, and its first
    /// loss is the trained adapter's (not the base's log 2); other settings than the adapter's are refused.
    func testAdapterContinuesAndConflictsAreRefused() throws {
        let sandbox = try TrainerSandbox()
        let data = try sandbox.writePairs("train.jsonl", Self.sixPairs)
        let (first, firstSink) = try sandbox.train(loraParameters(sandbox, data: data, out: "first"))
        let adapter = try XCTUnwrap(first.savedDirectory)
        var p = sandbox.parameters(data: data, out: "second")
        p.adapterDirectory = adapter.path
        p.learningRate = 0
        p.maxSteps = 1
        p.batchPairs = 2
        p.shuffle = false
        let (second, secondSink) = try sandbox.train(p)
        XCTAssertEqual(try TrainerSandbox.masterWeights(second.savedDirectory!), try TrainerSandbox.masterWeights(adapter))
        XCTAssertLessThan(secondSink.series("loss")[0], log(2) - 1e-3, "the continued run starts from the trained adapter")
        XCTAssertGreaterThan(firstSink.series("loss").count, 0)

        var conflicting = p
        conflicting.outputDirectory = sandbox.root.appendingPathComponent("third").path
        conflicting.loraRank = 8
        XCTAssertThrowsError(try sandbox.train(conflicting)) { XCTAssertTrue("\($0)".contains("--lora-r 8 vs r 4"), "\($0)") }
        XCTAssertFalse(FileManager.default.fileExists(atPath: conflicting.outputDirectory))
    }

    /// merge-lora writes W + s B A: the merged model's log-probs equal base + adapter's.
    func testMergeEqualsTheAdaptedModel() throws {
        let sandbox = try TrainerSandbox()
        let data = try sandbox.writePairs("train.jsonl", Self.sixPairs)
        let (summary, _) = try sandbox.train(loraParameters(sandbox, data: data, out: "out"))
        let merged = sandbox.root.appendingPathComponent("merged")
        try AdapterLoading.merge(baseDirectory: sandbox.modelDirectory.path, adapterDirectory: summary.savedDirectory!.path,
                                 outputDirectory: merged.path, dtype: .fp32)
        XCTAssertTrue(FileManager.default.fileExists(atPath: merged.appendingPathComponent("tokenizer.json").path))
        var options = ScoringReports.LogpsOptions(modelDirectory: sandbox.modelDirectory.path, dataFile: data.path)
        options.adapterDirectory = summary.savedDirectory!.path
        let adapted = try ScoringReports.logps(options)
        let plain = try ScoringReports.logps(ScoringReports.LogpsOptions(modelDirectory: merged.path, dataFile: data.path))
        let base = try ScoringReports.logps(ScoringReports.LogpsOptions(modelDirectory: sandbox.modelDirectory.path, dataFile: data.path))
        func numbers(_ lines: [String]) -> [Double] {
            lines.flatMap { line in
                ["chosen_logps", "rejected_logps"].map { key in
                    let object = try! JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
                    return (object[key] as! NSNumber).doubleValue
                }
            }
        }
        for (x, y) in zip(numbers(adapted), numbers(plain)) { XCTAssertEqual(x, y, accuracy: 1e-4 * max(1, abs(x))) }
        XCTAssertNotEqual(numbers(adapted), numbers(base), "the adapter changed nothing")
    }

    /// Bad LoRA settings are refused before anything is written, naming the reason.
    func testBadSettingsAreRefusedBeforeWriting() throws {
        let sandbox = try TrainerSandbox()
        let data = try sandbox.writePairs("train.jsonl", Self.sixPairs)
        let cases: [(String, (inout TrainingParameters) -> Void)] = [
            ("exceeds k_proj's smaller dimension 16", { $0.loraRank = 17 }),
            ("--lora-dropout 0.1: only 0 is supported", { $0.loraDropout = 0.1 }),
            ("--lora-alpha needs --lora-r > 0", { $0.loraRank = nil; $0.loraAlpha = 4 }),
            ("--lora-r must be >= 0", { $0.loraRank = -1 }),
        ]
        for (expected, change) in cases {
            var p = loraParameters(sandbox, data: data, out: "bad")
            change(&p)
            XCTAssertThrowsError(try { try p.validate(); _ = try sandbox.train(p) }()) { XCTAssertTrue("\($0)".contains(expected), "\($0)") }
            XCTAssertFalse(FileManager.default.fileExists(atPath: p.outputDirectory), expected)
        }
        XCTAssertThrowsError(try LoRAConfig.parseTargets("q_proj,lm_head")) { XCTAssertTrue("\($0)".contains("'lm_head' is not a module")) }
        // An adapter made for another base shape.
        var other = TrainerSandbox.tinyConfig
        other.intermediateSize = 48
        let otherSandbox = try TrainerSandbox(config: other)
        let (summary, _) = try otherSandbox.train(loraParameters(otherSandbox, data: try otherSandbox.writePairs("t.jsonl", Self.sixPairs), out: "o"))
        var p = sandbox.parameters(data: data, out: "mismatch")
        p.adapterDirectory = summary.savedDirectory!.path
        XCTAssertThrowsError(try sandbox.train(p)) { XCTAssertTrue("\($0)".contains("the adapter was made for a base model of another shape"), "\($0)") }
        XCTAssertFalse(FileManager.default.fileExists(atPath: p.outputDirectory))
    }
}
