import Foundation
import XCTest
@testable import Llama

/// A transformers-written model directory with its float64 reference numbers (see
/// Fixtures/make_transformers_fixture.py and Fixtures/make_family_fixtures.py).
struct ParityReference {
    let config: LlamaConfig
    let weights: [Float]
    let batch: TokenRows
    let logpWeights: [Float]
    let logits: [Float]
    let tokenLogps: [Float]
    let gradients: [String: [Float]]
    let vocab: Int
}

extension XCTestCase {
    /// The model directory `Fixtures/<folder>/<variant>` and its `reference.safetensors`.
    func loadParityReference(_ variant: String, folder: String) throws -> ParityReference {
        let directory = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures", withExtension: nil))
            .appendingPathComponent(folder).appendingPathComponent(variant)
        let (config, weights) = try ModelDirectory.load(directory)
        let file = try SafetensorsFile(contentsOf: directory.appendingPathComponent("reference.safetensors"))
        let shape = try XCTUnwrap(file["input_ids"]?.shape)
        let batch = TokenRows(
            rows: shape[0], seqLen: shape[1],
            inputIds: try file.integers("input_ids").map { Int32($0) },
            targetIds: try file.integers("target_ids").map { Int32($0) },
            lengths: try file.integers("lengths"))
        var gradients: [String: [Float]] = [:]
        for tensor in file.tensors where tensor.name.hasPrefix("grad.") {
            gradients[String(tensor.name.dropFirst("grad.".count))] = try file.floats(tensor.name)
        }
        return ParityReference(config: config, weights: weights, batch: batch, logpWeights: try file.floats("logp_weights"),
                         logits: try file.floats("logits"), tokenLogps: try file.floats("token_logps"),
                         gradients: gradients, vocab: config.vocabSize)
    }

    /// max |ours - reference| / max |reference|, printed, and checked against `tolerance`.
    @discardableResult
    func compare(_ name: String, _ ours: [Float], _ reference: [Float], tolerance: Float,
                 file: StaticString = #filePath, line: UInt = #line) -> Float {
        XCTAssertEqual(ours.count, reference.count, name, file: file, line: line)
        guard ours.count == reference.count else { return .infinity }
        var difference: Float = 0, scale: Float = 0
        for i in ours.indices {
            difference = max(difference, abs(ours[i] - reference[i]))
            scale = max(scale, abs(reference[i]))
        }
        let relative = difference / max(scale, .leastNormalMagnitude)
        print(String(format: "  %-52@ max|diff| %.3e  max|ref| %.3e  relative %.2e", name as NSString, difference, scale, relative))
        XCTAssertLessThanOrEqual(relative, tolerance, "\(name): max|diff| \(difference), max|ref| \(scale)", file: file, line: line)
        return relative
    }

    /// Logits at valid positions only (t < length): padded positions are not defined.
    func validLogits(_ logits: [Float], _ reference: ParityReference) -> [Float] {
        var kept: [Float] = []
        for row in 0..<reference.batch.rows {
            for t in 0..<reference.batch.lengths[row] {
                let start = (row * reference.batch.seqLen + t) * reference.vocab
                kept += logits[start..<(start + reference.vocab)]
            }
        }
        return kept
    }

    /// Forward (logits, token log-probs) and backward (every parameter gradient) of our model on
    /// the fixture's batch against the float64 reference, relative to max |reference| per tensor.
    func checkParity(_ variant: String, folder: String, precision: Precision, activationTolerance: Float,
                     gradientTolerance: Float) throws {
        let reference = try loadParityReference(variant, folder: folder)
        print("\(variant) \(precision.rawValue):")
        let model = try LlamaModel(config: reference.config, precision: precision, trainable: true)
        reference.weights.withUnsafeBufferPointer { model.loadWeights($0) }

        compare("logits", validLogits(model.logits(reference.batch), reference),
                validLogits(reference.logits, reference), tolerance: activationTolerance)
        let logps = model.forward(reference.batch, saveForBackward: true)
        compare("token_logps", logps, reference.tokenLogps, tolerance: activationTolerance)

        var gradients = [Float](repeating: 0, count: model.layout.totalCount)
        var groups: [Int] = []
        reference.logpWeights.withUnsafeBufferPointer { dLogps in
            gradients.withUnsafeMutableBufferPointer { output in
                model.backward(dTokenLogps: dLogps, gradients: output, groupFinished: { groups.append($0) })
            }
        }
        XCTAssertEqual(groups, Array((0...(reference.config.numHiddenLayers + 1)).reversed()))
        XCTAssertEqual(Set(reference.gradients.keys), Set(model.layout.entries.map(\.name)), "one reference gradient per parameter")
        for entry in model.layout.entries {
            guard let expected = reference.gradients[entry.name] else { continue }
            compare("grad " + entry.name, Array(gradients[entry.range]), expected, tolerance: gradientTolerance)
        }
    }

    /// The batch (as float tensors: ids are small) and our logits, for check_transformers_load.py.
    func writeOurLogits(_ logits: [Float], batch: TokenRows, vocab: Int, to url: URL) throws {
        let inputIds = batch.inputIds.map { Float($0) }
        let lengths = batch.lengths.map { Float($0) }
        try inputIds.withUnsafeBufferPointer { ids in
            try lengths.withUnsafeBufferPointer { rowLengths in
                try logits.withUnsafeBufferPointer { values in
                    try SafetensorsWriter.write([
                        SafetensorsTensorSource(name: "input_ids", shape: [batch.rows, batch.seqLen], values: ids),
                        SafetensorsTensorSource(name: "lengths", shape: [batch.rows], values: rowLengths),
                        SafetensorsTensorSource(name: "logits", shape: [batch.rows, batch.seqLen, vocab], values: values),
                    ], dtype: .F32, to: url)
                }
            }
        }
    }
}
