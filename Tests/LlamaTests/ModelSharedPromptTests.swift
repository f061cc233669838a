import XCTest
import TestSupport
import Kernels
@testable import Llama

/// `SharedPromptRows` (each pair's shared prefix run once) against the plain concatenated batch:
/// same per-token log-probs and same parameter gradients, to float32 rounding.
final class ModelSharedPromptTests: XCTestCase {
    /// A concatenated preference batch in the data layer's convention: pair i's rows are
    /// prompt + completion tokens t[0..<n]; input t[0..<n-1], target t[p+1] where it is a completion
    /// token; chosen rows first, rejected after, right-padded to the longest row.
    /// `pairs`: (prompt, chosen completion, rejected completion) lengths; `sharedCompletionStart`
    /// makes both completions of pair 0 begin with the same token (the shared prefix then runs past the prompt).
    static func pairedBatch(vocab: Int, seed: UInt64, pairs: [(Int, Int, Int)], sharedCompletionStart: Bool = true) -> TokenRows {
        var random = TestRandom(seed: seed)
        func token() -> Int32 { Int32(random.next() % UInt64(vocab)) }
        var rows: [(tokens: [Int32], prompt: Int)] = Array(repeating: ([], 0), count: 2 * pairs.count)
        for (i, (prompt, chosen, rejected)) in pairs.enumerated() {
            let promptTokens = (0..<prompt).map { _ in token() }
            let chosenTokens = (0..<chosen).map { _ in token() }
            var rejectedTokens = (0..<rejected).map { _ in token() }
            if i == 0 && sharedCompletionStart { rejectedTokens[0] = chosenTokens[0] }
            // Make sure the other completions differ at their first token (the prefix is exactly the prompt).
            if i != 0 && rejectedTokens[0] == chosenTokens[0] { rejectedTokens[0] = (chosenTokens[0] + 1) % Int32(vocab) }
            rows[i] = (promptTokens + chosenTokens, prompt)
            rows[pairs.count + i] = (promptTokens + rejectedTokens, prompt)
        }
        let seqLen = rows.map { $0.tokens.count - 1 }.max()!
        var inputs = [Int32](repeating: 0, count: rows.count * seqLen), targets = [Int32](repeating: -1, count: rows.count * seqLen)
        var lengths: [Int] = []
        for (r, row) in rows.enumerated() {
            let n = row.tokens.count
            lengths.append(n - 1)
            for p in 0..<(n - 1) {
                inputs[r * seqLen + p] = row.tokens[p]
                if p + 1 >= row.prompt { targets[r * seqLen + p] = row.tokens[p + 1] }
            }
            for p in (n - 1)..<seqLen { inputs[r * seqLen + p] = token() }  // padding holds any id
        }
        return TokenRows(rows: rows.count, seqLen: seqLen, inputIds: inputs, targetIds: targets, lengths: lengths)
    }

    static let shapes: [(Int, Int, Int)] = [(3, 4, 2), (1, 2, 5), (4, 1, 1), (2, 3, 3)]

    /// Packing: prefix lengths (prompt, or prompt + 1 where both completions start alike),
    /// positions restart for the rejected part, the token saving is the prefixes.
    func testPackingLayout() throws {
        let batch = Self.pairedBatch(vocab: 23, seed: 1, pairs: Self.shapes)
        let shared = try XCTUnwrap(SharedPromptRows(pairedRows: batch))
        XCTAssertEqual(shared.segments.map(\.promptLength), [4, 1, 4, 2])
        XCTAssertEqual(shared.segments.map(\.chosenLength), [6, 2, 4, 4])
        XCTAssertEqual(shared.segments.map(\.rejectedLength), [4, 5, 4, 4])
        XCTAssertEqual(shared.seqLen, 6)  // pair 0: 6 + 4 - 4; pair 1: 2 + 5 - 1
        XCTAssertEqual(shared.plainTokens - shared.packedTokens, 4 + 1 + 4 + 2)
        // Pair 1: chosen positions 0, 1 then rejected 1, 2, 3, 4 (the rejected part continues after the prefix).
        XCTAssertEqual(Array(shared.positions[6..<12]), [0, 1, 1, 2, 3, 4])
        // Every labelled log-prob of the plain batch is produced exactly once.
        XCTAssertEqual(shared.outputIndices.sorted(), (0..<batch.targetIds.count).filter { batch.targetIds[$0] >= 0 })
        // Odd rows, or a target on padding, cannot be packed exactly.
        var odd = batch
        odd.rows = 7; odd.lengths.removeLast()
        odd.inputIds.removeLast(batch.seqLen); odd.targetIds.removeLast(batch.seqLen)
        XCTAssertNil(SharedPromptRows(pairedRows: odd))
        var padTarget = batch
        padTarget.targetIds[1 * batch.seqLen + batch.seqLen - 1] = 3  // row 1 has length 2 < seqLen
        XCTAssertNil(SharedPromptRows(pairedRows: padTarget))
    }

    /// fp32 and fp16, tied and untied, GQA 4/2, padded rows of different prompt/completion lengths,
    /// one and two threads: log-probs within 2e-5 (fp32) / 2e-3 (fp16) of the plain batch's, every
    /// parameter gradient within 1e-4 (fp32) / 3e-3 (fp16) x the largest gradient magnitude.
    func testLogpsAndGradientsEqualPlainBatch() throws {
        let previous = BLAS.threads
        defer { BLAS.threads = previous }
        for (precision, tied, threads) in [(Precision.fp32, true, 1), (.fp32, false, 2), (.fp16, true, 1), (.fp16, false, 2)] {
            BLAS.threads = threads
            let config = ModelTestSupport.config(tied: tied)
            let weights = ModelTestSupport.weights(ParameterLayout(config: config), seed: tied ? 31 : 32)
            let plainModel = try ModelTestSupport.model(config, precision: precision, weights: weights)
            let sharedModel = try ModelTestSupport.model(config, precision: precision, weights: weights)
            let batch = Self.pairedBatch(vocab: config.vocabSize, seed: 33, pairs: Self.shapes)
            let shared = try XCTUnwrap(SharedPromptRows(pairedRows: batch))
            var random = TestRandom(seed: 34)
            let w = batch.targetIds.map { $0 >= 0 ? random.uniform() : 0 }
            let label = "\(precision) tied \(tied) threads \(threads)"

            let plainLogps = plainModel.forward(batch, saveForBackward: true)
            var plainGradient = [Float](repeating: 0, count: plainModel.layout.totalCount)
            var plainGroups: [Int] = []
            w.withUnsafeBufferPointer { dw in
                plainGradient.withUnsafeMutableBufferPointer { g in plainModel.backward(dTokenLogps: dw, gradients: g) { plainGroups.append($0) } }
            }
            let sharedLogps = sharedModel.forward(shared, saveForBackward: true)
            var sharedGradient = [Float](repeating: 0, count: sharedModel.layout.totalCount)
            var sharedGroups: [Int] = []
            w.withUnsafeBufferPointer { dw in
                sharedGradient.withUnsafeMutableBufferPointer { g in sharedModel.backward(dTokenLogps: dw, gradients: g) { sharedGroups.append($0) } }
            }

            XCTAssertEqual(sharedGroups, plainGroups, label)
            XCTAssertEqual(sharedLogps.count, plainLogps.count, label)
            XCTAssertTrue(sharedLogps.allSatisfy(\.isFinite) && sharedGradient.allSatisfy(\.isFinite), label)
            for p in plainLogps.indices where batch.targetIds[p] < 0 { XCTAssertEqual(sharedLogps[p], 0, label) }
            XCTAssertLessThanOrEqual(maxAbsDifference(sharedLogps, plainLogps), precision == .fp32 ? 2e-5 : 2e-3, label)
            let scale = maxAbs(plainGradient)
            XCTAssertGreaterThan(scale, 0.1, label)
            for entry in plainModel.layout.entries {
                let difference = maxAbsDifference(Array(sharedGradient[entry.range]), Array(plainGradient[entry.range]))
                XCTAssertLessThanOrEqual(difference, (precision == .fp32 ? 1e-4 : 3e-3) * scale, "\(label) \(entry.name)")
            }
        }
    }

    /// The same model alternates plain and shared batches of other shapes (arena reuse and growth),
    /// and a non-saving shared forward (the reference model's) gives the same log-probs.
    func testAlternatingBatchesAndFrozenForward() throws {
        let config = ModelTestSupport.config(tied: true)
        let weights = ModelTestSupport.weights(ParameterLayout(config: config), seed: 41)
        let model = try ModelTestSupport.model(config, weights: weights)
        let frozen = try ModelTestSupport.model(config, precision: .fp16, trainable: false, weights: weights)
        let frozenPlain = try ModelTestSupport.model(config, precision: .fp16, trainable: false, weights: weights)
        for (seed, shapes) in [(42, [(2, 3, 3)]), (43, Self.shapes), (44, [(5, 2, 6), (1, 1, 1)])] as [(UInt64, [(Int, Int, Int)])] {
            let batch = Self.pairedBatch(vocab: config.vocabSize, seed: seed, pairs: shapes)
            let shared = try XCTUnwrap(SharedPromptRows(pairedRows: batch))
            XCTAssertLessThanOrEqual(maxAbsDifference(model.forward(shared, saveForBackward: false),
                                                      model.forward(batch, saveForBackward: false)), 2e-5, "seed \(seed)")
            XCTAssertLessThanOrEqual(maxAbsDifference(frozen.forward(shared, saveForBackward: false),
                                                      frozenPlain.forward(batch, saveForBackward: false)), 2e-3, "seed \(seed)")
        }
    }
}
