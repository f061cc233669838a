import Foundation
import XCTest
import TestSupport
@testable import Llama

/// `SharedWeights`: a reference running on a mapped read-only copy gives bit-identical
/// log-probs to one holding its own weights (fp32 and fp16); the file has no name, and the
/// creator's descriptor can go while mapped.
final class SharedWeightsTests: XCTestCase {
    func testModelOnSharedWeightsGivesBitIdenticalLogps() throws {
        let c = ModelTestSupport.config(tied: false)
        let weights = ModelTestSupport.weights(ParameterLayout(config: c), seed: 8)
        let batch = ModelTestSupport.batch(vocab: c.vocabSize, seed: 2)
        for precision in [Precision.fp32, .fp16] {
            let created = try weights.withUnsafeBufferPointer { try SharedWeights.create(weights: $0, precision: precision) }
            // Opened through the creator's descriptor: a file in memory with no name anywhere.
            XCTAssertTrue(created.address.hasPrefix("/proc/\(getpid())/fd/"), created.address)
            XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: created.address), "/memfd:dpo-reference (deleted)")
            let opened = try SharedWeights.open(address: created.address, count: weights.count, precision: precision)
            XCTAssertThrowsError(try SharedWeights.open(address: created.address, count: weights.count + 1, precision: precision)) { error in
                XCTAssertTrue("\(error)".contains("expected"), "\(error)")
            }
            created.closeDescriptor()
            XCTAssertThrowsError(try SharedWeights.open(address: created.address, count: weights.count, precision: precision),
                                 "the descriptor goes; the mappings stay")
            let privateModel = try ModelTestSupport.model(c, precision: precision, trainable: false, weights: weights)
            let expected = privateModel.forward(batch, saveForBackward: false)
            for shared in [created, opened] {
                let model = try LlamaModel(config: c, precision: precision, trainable: false, sharedWeights: shared)
                let logps = model.forward(batch, saveForBackward: false)
                XCTAssertEqual(logps.map(\.bitPattern), expected.map(\.bitPattern), "\(precision)")
                XCTAssertTrue(logps.contains { $0 != 0 })
            }
            // Only a frozen model of the same precision and size runs on them.
            XCTAssertThrowsError(try LlamaModel(config: c, precision: precision, trainable: true, sharedWeights: opened))
            XCTAssertThrowsError(try LlamaModel(config: c, precision: precision == .fp32 ? .fp16 : .fp32, trainable: false, sharedWeights: opened))
        }
    }
}
