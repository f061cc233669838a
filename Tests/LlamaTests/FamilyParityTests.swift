import Foundation
import XCTest
import TestSupport
@testable import Llama

/// Every model family and RoPE variant against transformers, on the committed fixtures of
/// Fixtures/make_family_fixtures.py (random small models written by transformers' own classes):
/// loaded with `ModelDirectory`, run forward and backward on the fixture's right-padded batch.
///   fp32: logits, log-probs and every parameter gradient (biases and q/k norm weights included)
///         within 1e-4 x max |reference| per tensor;
///   fp16: activations within 5e-3, gradients within 2e-2 x max |reference| (as TransformersParityTests).
/// Then the paths that are not in the fixture: shared-prompt batches, KV-cache generation, saving.
final class FamilyParityTests: XCTestCase {
    static let folder = "family_parity"
    static let variants = ["qwen2_bias", "qwen3_qknorm", "llama3_rope", "yarn_rope", "linear_rope", "dynamic_rope", "mistral_window"]

    func reference(_ variant: String) throws -> ParityReference { try loadParityReference(variant, folder: Self.folder) }

    func testFamiliesFP32() throws {
        for variant in Self.variants {
            try checkParity(variant, folder: Self.folder, precision: .fp32, activationTolerance: 1e-4, gradientTolerance: 1e-4)
        }
    }

    func testFamiliesFP16() throws {
        for variant in Self.variants {
            try checkParity(variant, folder: Self.folder, precision: .fp16, activationTolerance: 5e-3, gradientTolerance: 2e-2)
        }
    }

    /// Each config.json is read as its family with the options transformers applies.
    func testConfigsReadAsTheirFamily() throws {
        let qwen2 = try reference("qwen2_bias").config
        XCTAssertEqual(qwen2.family, .qwen2)
        XCTAssertTrue(qwen2.hasQKVBias)
        XCTAssertNil(qwen2.slidingWindow, "use_sliding_window false")
        let qwen3 = try reference("qwen3_qknorm").config
        XCTAssertTrue(qwen3.hasQueryKeyNorm)
        XCTAssertEqual(qwen3.headDim, 12)
        XCTAssertFalse(qwen3.tieWordEmbeddings)
        // Written in the hub's spelling (rope_theta + rope_scaling) by the generator.
        XCTAssertEqual(try reference("llama3_rope").config.rope,
                       .llama3(factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8))
        XCTAssertEqual(try reference("yarn_rope").config.rope, .yarn(.init(factor: 4, originalMaxPositions: 8)))
        XCTAssertEqual(try reference("linear_rope").config.rope, .linear(factor: 2))
        let dynamic = try reference("dynamic_rope").config
        XCTAssertEqual(dynamic.positionLimit?.tokens, 16)
        XCTAssertEqual(dynamic.positionLimit?.key, "rope_scaling")
        let mistral = try reference("mistral_window").config
        XCTAssertEqual(mistral.family, .mistral)
        XCTAssertEqual(mistral.slidingWindow, 16)
        XCTAssertEqual(mistral.positionLimit?.tokens, 16)
    }

    /// Rows longer than a sliding window or than dynamic RoPE's max_position_embeddings are refused
    /// with the key and the reason; generation stops at the window.
    func testRowsPastTheLimitRefused() throws {
        for (variant, key) in [("mistral_window", "sliding_window"), ("dynamic_rope", "rope_scaling")] {
            let config = try reference(variant).config
            XCTAssertNoThrow(try config.checkRowLength(16))
            XCTAssertThrowsError(try config.checkRowLength(17)) { error in
                XCTAssertEqual((error as? LlamaConfigError)?.key, key)
                XCTAssertTrue(String(describing: error).contains("17"), "\(error)")
            }
        }
        let r = try reference("mistral_window")
        let model = try ModelTestSupport.model(r.config, trainable: false, weights: r.weights)
        let generated = model.generate(prompt: [3, 4, 5], maxNewTokens: 40, sampling: .greedy, stopTokens: [], onToken: nil)
        XCTAssertEqual(generated.count, 16 - 3, "prompt + generated stay within the window")
    }

    /// Shared-prompt batches give the plain batch's log-probs and gradients in every family.
    func testSharedPromptEqualsPlainBatch() throws {
        for variant in Self.variants {
            let r = try reference(variant)
            let plain = try ModelTestSupport.model(r.config, weights: r.weights)
            let sharedModel = try ModelTestSupport.model(r.config, weights: r.weights)
            let batch = ModelSharedPromptTests.pairedBatch(vocab: r.config.vocabSize, seed: 51, pairs: ModelSharedPromptTests.shapes)
            let shared = try XCTUnwrap(SharedPromptRows(pairedRows: batch))
            var random = TestRandom(seed: 52)
            let w = batch.targetIds.map { $0 >= 0 ? random.uniform() : 0 }
            let (plainGradient, _) = ModelTestSupport.gradient(plain, batch, w)
            let plainLogps = plain.forward(batch, saveForBackward: false)
            let sharedLogps = sharedModel.forward(shared, saveForBackward: true)
            var sharedGradient = [Float](repeating: 0, count: sharedModel.layout.totalCount)
            w.withUnsafeBufferPointer { dw in
                sharedGradient.withUnsafeMutableBufferPointer { g in sharedModel.backward(dTokenLogps: dw, gradients: g, groupFinished: nil) }
            }
            XCTAssertLessThanOrEqual(maxAbsDifference(sharedLogps, plainLogps), 2e-5, variant)
            let scale = maxAbs(plainGradient)
            for entry in plain.layout.entries {
                let difference = maxAbsDifference(Array(sharedGradient[entry.range]), Array(plainGradient[entry.range]))
                XCTAssertLessThanOrEqual(difference, 1e-4 * scale, "\(variant) \(entry.name)")
            }
        }
    }

    /// KV-cache greedy decoding picks the argmax of the full (uncached) logits at every step,
    /// in fp32 and fp16, for every family.
    func testGreedyGenerationEqualsFullLogits() throws {
        for variant in Self.variants {
            let r = try reference(variant)
            for precision in Precision.allCases {
                let model = try ModelTestSupport.model(r.config, precision: precision, trainable: false, weights: r.weights)
                let prompt: [Int32] = [3, 17, 9]
                let generated = model.generate(prompt: prompt, maxNewTokens: 9, sampling: .greedy, stopTokens: [], onToken: nil)
                XCTAssertEqual(generated.count, 9, variant)
                var sequence = prompt
                let v = r.config.vocabSize
                for token in generated {
                    let n = sequence.count
                    let logits = model.logits(TokenRows(rows: 1, seqLen: n, inputIds: sequence,
                                                        targetIds: [Int32](repeating: -1, count: n), lengths: [n]))
                    let last = Array(logits[((n - 1) * v)..<(n * v)])
                    let argmax = last.indices.max { last[$0] < last[$1] || (last[$0] == last[$1] && $0 > $1) }!
                    XCTAssertEqual(Int(token), argmax, "\(variant) \(precision) step \(n - prompt.count)")
                    sequence.append(token)
                }
            }
        }
    }

    /// `ModelDirectory.save` writes each family back as its own class with its options: the
    /// directory reloads to an equal config and identical logits, and config.json names the
    /// transformers class. With `DPO_HF_EXPORT_DIR` set, the directories (with our logits) are
    /// kept for Fixtures/check_transformers_load.py, which loads them with transformers.
    func testSavedDirectoriesKeepTheirFamily() throws {
        let exportRoot = ProcessInfo.processInfo.environment["DPO_HF_EXPORT_DIR"].map { URL(fileURLWithPath: $0) }
        for variant in Self.variants {
            let r = try reference(variant)
            let directory = try exportRoot.map { root -> URL in
                let url = root.appendingPathComponent("family-\(variant)")
                try? FileManager.default.removeItem(at: url)
                return url
            } ?? freshTemporaryDirectory()
            try ModelDirectory.save(config: r.config, weights: r.weights, to: directory)
            let object = try XCTUnwrap(JSONValue.parse(Data(contentsOf: directory.appendingPathComponent("config.json"))).objectValue)
            XCTAssertEqual(object["architectures"], .array([.string(r.config.family.architecture)]), variant)
            XCTAssertEqual(object["model_type"], .string(r.config.modelType), variant)
            XCTAssertEqual(object["transformers_version"], .string("5.24.0"), "\(variant): keys not interpreted are kept")
            let (config, weights) = try ModelDirectory.load(directory)
            XCTAssertEqual(config, r.config, variant)
            XCTAssertEqual(config.rope, r.config.rope, variant)
            XCTAssertEqual(config.slidingWindow, r.config.slidingWindow, variant)
            XCTAssertEqual(weights, r.weights, variant)
            let model = try ModelTestSupport.model(config, trainable: false, weights: weights)
            let logits = model.logits(r.batch)
            let original = try ModelTestSupport.model(r.config, trainable: false, weights: r.weights).logits(r.batch)
            XCTAssertEqual(validLogits(logits, r), validLogits(original, r), variant)
            try writeOurLogits(logits, batch: r.batch, vocab: config.vocabSize,
                               to: directory.appendingPathComponent("our_logits.safetensors"))
        }
    }
}
