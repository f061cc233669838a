import XCTest
import TestSupport
import Kernels
@testable import Llama

/// `layerWeights` (one decoder layer converted from binary16 in one threaded pass, instead of a
/// pass per matrix, norm and bias) hands the kernels exactly the values the stored weights hold:
/// every parameter of every layer equal to its own conversion, and an fp16 model's forward
/// bit-identical to an fp32 model's on the binary16-rounded weights (llama tied and untied,
/// qwen2's q/k/v bias, qwen3's q/k norm; 1 and 2 threads, shapes large enough to split).
final class ModelLayerWeightsTests: XCTestCase {
    static func config(_ family: String) -> LlamaConfig {
        var c = ModelTestSupport.config(tied: family == "qwen2", layers: 2)
        c.modelType = family
        return c
    }

    func testEveryLayerParameterIsItsOwnConversion() throws {
        for family in ["llama", "qwen2", "qwen3"] {
            let c = Self.config(family)
            let weights = ModelTestSupport.weights(ParameterLayout(config: c), seed: 5)
            let model = try ModelTestSupport.model(c, precision: .fp16, weights: weights)
            let stored = Half.decode(Half.encode(weights))
            for layer in 0..<c.numHiddenLayers {
                let view = model.layerWeights(layer)
                let entries = model.layout.entries.filter { $0.group == 1 + layer }
                XCTAssertEqual(entries.map(\.count).reduce(0, +), view.range.count, "\(family) layer \(layer)")
                for entry in entries {
                    let values = Array(UnsafeBufferPointer(start: view[entry.offset], count: entry.count))
                    XCTAssertEqual(values.map(\.bitPattern), stored[entry.range].map(\.bitPattern), "\(family) \(entry.name)")
                }
            }
        }
    }

    /// `matrix` (one matrix, for decoding) converts into the place `layerWeights` uses, so a call
    /// during a pass over a layer leaves that layer's other views as they were.
    func testMatrixDuringALayerPassKeepsTheLayerViews() throws {
        let c = Self.config("qwen2")
        let weights = ModelTestSupport.weights(ParameterLayout(config: c), seed: 6)
        let model = try ModelTestSupport.model(c, precision: .fp16, weights: weights)
        let o = model.layerOffsets[1]
        let view = model.layerWeights(1)
        let before = Array(UnsafeBufferPointer(start: view.base, count: view.range.count))
        let output = model.matrix(o.output, count: c.hiddenSize * c.qDim)
        XCTAssertEqual(output, view[o.output])
        XCTAssertEqual(Array(UnsafeBufferPointer(start: view.base, count: view.range.count)).map(\.bitPattern), before.map(\.bitPattern))
        // A matrix of another layer lands at the same place within its own layer.
        XCTAssertEqual(model.matrix(model.layerOffsets[0].gate, count: 2 * c.intermediateSize * c.hiddenSize), view[o.gate])
    }

    /// fp16 storage with float32 compute: with saved activations or not, the forward is the fp32
    /// forward of the rounded weights (the binary16 slots are only read back by backward).
    func testFP16ForwardIsFP32ForwardOnRoundedWeights() throws {
        let previous = BLAS.threads
        defer { BLAS.threads = previous }
        for threads in [1, 2] {
            BLAS.threads = threads
            for family in ["llama", "qwen2", "qwen3"] {
                var c = Self.config(family)
                // Wide enough that the conversions and kernels split over 2 threads.
                c.hiddenSize = 128; c.intermediateSize = 384; c.numAttentionHeads = 8; c.numKeyValueHeads = 4; c.headDim = 16
                c.vocabSize = 600
                let weights = ModelTestSupport.weights(ParameterLayout(config: c), seed: 9, scale: 0.1)
                let rounded = Half.decode(Half.encode(weights))
                let half = try ModelTestSupport.model(c, precision: .fp16, weights: weights)
                let full = try ModelTestSupport.model(c, precision: .fp32, weights: rounded)
                let batch = ModelTestSupport.batch(vocab: c.vocabSize, seed: 4, lengths: [24, 17, 9], seqLen: 24)
                for saving in [false, true] {
                    let expected = full.forward(batch, saveForBackward: saving)
                    let actual = half.forward(batch, saveForBackward: saving)
                    XCTAssertTrue(expected.contains { $0 != 0 }, "zero log-probs would prove nothing")
                    XCTAssertEqual(actual.map(\.bitPattern), expected.map(\.bitPattern),
                                   "\(family), \(threads) threads, saveForBackward \(saving)")
                }
            }
        }
    }
}
