import Foundation
import XCTest
@testable import Llama

/// LoRA against PEFT 0.21 / PyTorch float64 (Fixtures/make_lora_fixtures.py): a PEFT-saved
/// adapter loads, and with it our fp32 logits, log-probs, A/B gradients (of a weighted log-prob
/// sum and of one sigmoid DPO loss whose reference is the adapters-off switch, as PEFT's
/// disable_adapter) and merged weights (merge_and_unload) agree within 1e-4 of max|ref|.
final class LoRAParityTests: XCTestCase {
    struct Fixture {
        let model: LlamaModel
        let adapters: LoRAAdapters
        let batch: TokenRows
        let file: SafetensorsFile
    }

    func load(_ variant: String) throws -> Fixture {
        let directory = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures", withExtension: nil))
            .appendingPathComponent("lora_parity").appendingPathComponent(variant)
        let (config, weights) = try ModelDirectory.load(directory.appendingPathComponent("base"))
        let model = try LlamaModel(config: config, precision: .fp32, trainable: true)
        weights.withUnsafeBufferPointer { model.loadWeights($0) }
        let loaded = try LoRAAdapterDirectory.load(directory.appendingPathComponent("adapter"), model: config)
        XCTAssertEqual(loaded.baseModel, "../base")
        let adapters = try LoRAAdapters(model: config, config: loaded.config)
        loaded.values.withUnsafeBufferPointer { adapters.load($0) }
        model.attach(adapters)
        let file = try SafetensorsFile(contentsOf: directory.appendingPathComponent("reference.safetensors"))
        let shape = try XCTUnwrap(file["input_ids"]?.shape)
        let batch = TokenRows(rows: shape[0], seqLen: shape[1], inputIds: try file.integers("input_ids").map { Int32($0) },
                              targetIds: try file.integers("target_ids").map { Int32($0) }, lengths: try file.integers("lengths"))
        return Fixture(model: model, adapters: adapters, batch: batch, file: file)
    }

    func gradient(_ f: Fixture, _ dTokens: [Float]) -> [Float] {
        _ = f.model.forward(f.batch, saveForBackward: true)
        var g = [Float](repeating: 0, count: f.model.trainableCount)
        dTokens.withUnsafeBufferPointer { d in g.withUnsafeMutableBufferPointer { f.model.backward(dTokenLogps: d, gradients: $0, groupFinished: nil) } }
        return g
    }

    func compareAdapters(_ f: Fixture, _ ours: [Float], prefix: String) throws {
        for entry in f.adapters.layout.entries {
            compare(prefix + entry.name, Array(ours[entry.range]), try f.file.floats(prefix + entry.name), tolerance: 1e-4)
        }
    }

    func testMatchesPEFT() throws {
        for (variant, targets) in [("llama_all", 7), ("qwen2_subset", 4)] {
            print(variant)
            let f = try load(variant)
            XCTAssertEqual(f.adapters.config.targets.count, targets)
            let c = f.model.config, n = f.batch.rows * f.batch.seqLen
            // Logits at valid positions, token log-probs.
            let logits = f.model.logits(f.batch), reference = try f.file.floats("logits")
            var ours: [Float] = [], theirs: [Float] = []
            for r in 0..<f.batch.rows {
                for t in 0..<f.batch.lengths[r] {
                    let start = (r * f.batch.seqLen + t) * c.vocabSize
                    ours += logits[start..<(start + c.vocabSize)]
                    theirs += reference[start..<(start + c.vocabSize)]
                }
            }
            compare("logits", ours, theirs, tolerance: 1e-4)
            compare("token_logps", f.model.forward(f.batch, saveForBackward: false), try f.file.floats("token_logps"), tolerance: 1e-4)
            // Gradient of sum(w * logps).
            try compareAdapters(f, gradient(f, try f.file.floats("logp_weights")), prefix: "grad.")
            // One sigmoid DPO loss: pairs (0, 2), (1, 3); reference = adapters off.
            let policy = f.model.forward(f.batch, saveForBackward: false), base = f.model.forwardWithoutAdapters(f.batch)
            var ratio = [Double](repeating: 0, count: f.batch.rows)
            for r in 0..<f.batch.rows {
                for t in 0..<f.batch.seqLen { ratio[r] += Double(policy[r * f.batch.seqLen + t]) - Double(base[r * f.batch.seqLen + t]) }
            }
            let beta = 0.1, pairs = f.batch.rows / 2
            var loss = 0.0, dRow = [Double](repeating: 0, count: f.batch.rows)
            for i in 0..<pairs {
                let z = beta * (ratio[i] - ratio[i + pairs])
                loss += log1p(exp(-z)) / Double(pairs)
                let d = -beta * (1 / (1 + exp(z))) / Double(pairs)  // d loss / d ratio(chosen)
                dRow[i] = d
                dRow[i + pairs] = -d
            }
            XCTAssertEqual(loss, Double(try f.file.floats("dpo_loss")[0]), accuracy: 1e-5)
            var dTokens = [Float](repeating: 0, count: n)
            for r in 0..<f.batch.rows { for t in 0..<f.batch.seqLen where f.batch.targetIds[r * f.batch.seqLen + t] >= 0 {
                dTokens[r * f.batch.seqLen + t] = Float(dRow[r])
            } }
            try compareAdapters(f, gradient(f, dTokens), prefix: "dpo_grad.")
            // merge_and_unload.
            let merged = f.model.mergedWeights()
            for entry in f.model.layout.entries {
                compare("merged." + entry.name, Array(merged[entry.range]), try f.file.floats("merged." + entry.name), tolerance: 1e-6)
            }
        }
    }
}
