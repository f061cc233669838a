import XCTest
import TestSupport
import Kernels
@testable import Llama

/// `layerWeights` hands the kernels exactly the values the stored weights hold, whether the
/// matrices stay binary16 for `HalfMatmul` (only the vectors converted) or the whole layer is
/// converted in one threaded pass: every parameter of every layer equal to its own conversion
/// (or its stored bits), and an fp16 model's forward equal to an fp32 model's on the
/// binary16-rounded weights: bit for bit when converted, within float32 rounding through
/// `HalfMatmul` (llama tied and untied, qwen2's q/k/v bias, qwen3's q/k norm; 1 and 2 threads,
/// shapes large enough to split).
final class ModelLayerWeightsTests: XCTestCase {
    /// Runs `body` with `HalfMatmul.enabled` set to `direct` (restored afterwards).
    static func withDirectHalfMatrices(_ direct: Bool, _ body: () throws -> Void) rethrows {
        let previous = HalfMatmul.enabled
        HalfMatmul.enabled = direct
        defer { HalfMatmul.enabled = previous }
        try body()
    }

    /// Both ways where the kernel exists; converting only elsewhere.
    static var modes: [Bool] { HalfMatmul.isAvailable ? [true, false] : [false] }

    static func config(_ family: String) -> LlamaConfig {
        var c = ModelTestSupport.config(tied: family == "qwen2", layers: 2)
        c.modelType = family
        return c
    }

    func testEveryLayerParameterIsItsOwnConversion() throws {
        for direct in Self.modes {
            try Self.withDirectHalfMatrices(direct) {
                for family in ["llama", "qwen2", "qwen3"] {
                    let c = Self.config(family)
                    let weights = ModelTestSupport.weights(ParameterLayout(config: c), seed: 5)
                    let model = try ModelTestSupport.model(c, precision: .fp16, weights: weights)
                    let bits = Half.encode(weights), stored = Half.decode(bits)
                    for layer in 0..<c.numHiddenLayers {
                        let view = model.layerWeights(layer)
                        let entries = model.layout.entries.filter { $0.group == 1 + layer }
                        XCTAssertEqual(entries.map(\.count).reduce(0, +), view.range.count, "\(family) layer \(layer)")
                        XCTAssertEqual(view.half != nil, direct, "\(family) layer \(layer)")
                        for entry in entries {
                            let label = "\(family) \(entry.name), direct \(direct)"
                            if entry.shape.count == 1 {
                                let values = Array(UnsafeBufferPointer(start: view[entry.offset], count: entry.count))
                                XCTAssertEqual(values.map(\.bitPattern), stored[entry.range].map(\.bitPattern), label)
                                continue
                            }
                            switch view.matrix(entry.offset) {
                            case .binary16(let pointer):
                                XCTAssertEqual(Array(UnsafeBufferPointer(start: pointer, count: entry.count)), Array(bits[entry.range]), label)
                            case .float32(let pointer):
                                XCTAssertFalse(direct, label)
                                let values = Array(UnsafeBufferPointer(start: pointer, count: entry.count))
                                XCTAssertEqual(values.map(\.bitPattern), stored[entry.range].map(\.bitPattern), label)
                            }
                        }
                    }
                }
            }
        }
    }

    /// `matrix` (one matrix, for decoding) converts into the place `layerWeights` uses, so a call
    /// during a pass over a layer leaves that layer's other views as they were.
    func testMatrixDuringALayerPassKeepsTheLayerViews() throws {
        for direct in Self.modes {
            try Self.withDirectHalfMatrices(direct) {
                let c = Self.config("qwen2")
                let weights = ModelTestSupport.weights(ParameterLayout(config: c), seed: 6)
                let model = try ModelTestSupport.model(c, precision: .fp16, weights: weights)
                let o = model.layerOffsets[1]
                let view = model.layerWeights(1)
                // What the view hands out as float32: every value when converted, the vectors when not.
                let viewed = direct ? model.layerVectorRanges(1) : [view.range]
                func snapshot() -> [UInt32] { viewed.flatMap { r in (r.lowerBound..<r.upperBound).map { view.base[$0 - view.range.lowerBound].bitPattern } } }
                let before = snapshot()
                let place = { (offset: Int, layer: Int) in view.base + (offset - model.layout.groupRanges[1 + layer].lowerBound) }
                let output = model.matrix(o.output, count: c.hiddenSize * c.qDim)
                XCTAssertEqual(output, place(o.output, 1), "direct \(direct)")
                XCTAssertEqual(snapshot(), before, "direct \(direct)")
                // A matrix of another layer lands at the same place within its own layer.
                XCTAssertEqual(model.matrix(model.layerOffsets[0].gate, count: 2 * c.intermediateSize * c.hiddenSize),
                               place(model.layerOffsets[0].gate, 0), "direct \(direct)")
            }
        }
    }

    /// fp16 storage with float32 compute: with saved activations or not, the forward is the fp32
    /// forward of the rounded weights (the binary16 slots are only read back by backward): bit
    /// for bit when the layer is converted first; through `HalfMatmul`, whose sums run in
    /// another order than sgemm's, within float32 rounding (log-probs to 2e-5 relative).
    func testFP16ForwardIsFP32ForwardOnRoundedWeights() throws {
        let previous = BLAS.threads
        defer { BLAS.threads = previous }
        for direct in Self.modes {
            for threads in [1, 2] {
                BLAS.threads = threads
                for family in ["llama", "qwen2", "qwen3"] {
                    var c = Self.config(family)
                    // Wide enough that the conversions and kernels split over 2 threads.
                    c.hiddenSize = 128; c.intermediateSize = 384; c.numAttentionHeads = 8; c.numKeyValueHeads = 4; c.headDim = 16
                    c.vocabSize = 600
                    let weights = ModelTestSupport.weights(ParameterLayout(config: c), seed: 9, scale: 0.1)
                    let rounded = Half.decode(Half.encode(weights))
                    let full = try ModelTestSupport.model(c, precision: .fp32, weights: rounded)
                    let batch = ModelTestSupport.batch(vocab: c.vocabSize, seed: 4, lengths: [24, 17, 9], seqLen: 24)
                    try Self.withDirectHalfMatrices(direct) {
                        let half = try ModelTestSupport.model(c, precision: .fp16, weights: weights)
                        for saving in [false, true] {
                            let expected = full.forward(batch, saveForBackward: saving)
                            let actual = half.forward(batch, saveForBackward: saving)
                            let label = "\(family), \(threads) threads, saveForBackward \(saving), direct \(direct)"
                            XCTAssertTrue(expected.contains { $0 != 0 }, "zero log-probs would prove nothing")
                            if direct {
                                XCTAssertLessThanOrEqual(maxAbsDifference(actual, expected), 2e-5 * max(1, maxAbs(expected)), label)
                            } else {
                                XCTAssertEqual(actual.map(\.bitPattern), expected.map(\.bitPattern), label)
                            }
                        }
                    }
                }
            }
        }
    }
}
