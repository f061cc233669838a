import XCTest
import TestSupport
import Kernels
@testable import Llama

/// `SavedActivations.rowCommit` / `rowRestore` (the conversion of a saved activation one token row
/// at a time, inside a pass that reads the rows anyway) store and give back exactly what the
/// whole-buffer `commit` / `restore` do: the same binary16 slots, the same float32 values, with
/// and without checkpointing; and under fp32 they convert nothing.
final class SavedActivationsRowTests: XCTestCase {
    let config = ModelTestSupport.config(tied: true)
    let tokens = 7, layers = 2

    /// Random float32 values in the work buffer of `kind`/`layer`, wide enough to round in binary16.
    func fill(_ saved: SavedActivations, _ kind: SavedActivations.Kind, _ layer: Int, seed: UInt64, count: Int) -> [Float] {
        var random = TestRandom(seed: seed)
        let values = random.array(count, scale: 3)
        saved.buffer(kind, layer).update(from: values, count: count)
        return values
    }

    func width(_ kind: SavedActivations.Kind) -> Int {
        switch kind {
        case .layerInput, .middle: return config.hiddenSize
        case .qkv: return config.qDim + 2 * config.kvDim
        case .gateUp: return 2 * config.intermediateSize
        case .qkPreNorm: return 0
        }
    }

    func testRowCommitAndRestoreEqualWholeBufferOnes() {
        let kinds: [SavedActivations.Kind] = [.layerInput, .qkv, .middle, .gateUp]
        for checkpointing in [false, true] {
            let whole = SavedActivations(config: config, tokens: tokens, layers: layers, saving: true, precision: .fp16,
                                         checkpointing: checkpointing)
            let rows = SavedActivations(config: config, tokens: tokens, layers: layers, saving: true, precision: .fp16,
                                        checkpointing: checkpointing)
            whole.recomputing = checkpointing; rows.recomputing = checkpointing
            for layer in 0..<layers {
                for (k, kind) in kinds.enumerated() {
                    let count = tokens * width(kind), seed = UInt64(10 * layer + k)
                    let values = fill(whole, kind, layer, seed: seed, count: count)
                    _ = fill(rows, kind, layer, seed: seed, count: count)
                    whole.commit(kind, layer)
                    if let row = rows.rowCommit(kind, layer) {
                        for n in 0..<tokens { row(n) }
                    } else {
                        XCTAssertTrue(checkpointing && kind == .layerInput, "only checkpointing keeps layer inputs unconverted")
                    }
                    // Restore right away (checkpointing keeps one layer of each kind but the inputs).
                    let expected = Array(UnsafeBufferPointer(start: whole.restore(kind, layer), count: count))
                    let (values32, row) = rows.rowRestore(kind, layer)
                    values32.update(repeating: .nan, count: count)
                    for n in 0..<tokens { row!(n) }
                    let actual = Array(UnsafeBufferPointer(start: values32, count: count))
                    XCTAssertEqual(actual.map(\.bitPattern), expected.map(\.bitPattern), "\(kind) layer \(layer) checkpointing \(checkpointing)")
                    XCTAssertEqual(expected.map(\.bitPattern), Half.decode(Half.encode(values)).map(\.bitPattern),
                                   "restore gives the binary16-rounded values")
                    XCTAssertNotEqual(expected, values, "values binary16 keeps exactly would prove nothing")
                }
            }
        }
    }

    func testFP32ConvertsNothing() {
        let saved = SavedActivations(config: config, tokens: tokens, layers: layers, saving: true, precision: .fp32)
        for kind in [SavedActivations.Kind.layerInput, .qkv, .middle, .gateUp] {
            XCTAssertNil(saved.rowCommit(kind, 1))
            let (values, row) = saved.rowRestore(kind, 1)
            XCTAssertNil(row)
            XCTAssertEqual(values, saved.buffer(kind, 1))
        }
        let frozen = SavedActivations(config: config, tokens: tokens, layers: layers, saving: false, precision: .fp16)
        XCTAssertNil(frozen.rowCommit(.gateUp, 0), "without saving nothing is committed")
    }
}
