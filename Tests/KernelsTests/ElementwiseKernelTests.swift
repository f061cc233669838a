import XCTest
import CKernelSupport
import TestSupport
@testable import Kernels

/// Embedding, RMSNorm, SwiGLU, residual add, Float16 conversion.
final class ElementwiseKernelTests: XCTestCase {
    // MARK: - Embedding

    /// Lookup copies rows; backward scatter-adds (repeated ids accumulate) and equals finite differences.
    func testEmbeddingForwardAndScatterAddBackward() {
        var random = TestRandom(seed: 3)
        let vocab = 6, hidden = 4
        let table = random.array(vocab * hidden)
        let ids: [Int32] = [2, 5, 2, 0]
        let out = [Float](repeating: 0, count: ids.count * hidden).mutated { y in
            Embedding.forward(ids: ids, table: table, output: y, tokens: ids.count, hidden: hidden)
        }
        for (n, id) in ids.enumerated() {
            XCTAssertEqual(Array(out[(n * hidden)..<((n + 1) * hidden)]), Array(table[(Int(id) * hidden)..<((Int(id) + 1) * hidden)]))
        }
        let half = Half.encode(table)
        let outHalf = [Float](repeating: 0, count: ids.count * hidden).mutated { y in
            Embedding.forward(ids: ids, table: half, output: y, tokens: ids.count, hidden: hidden)
        }
        XCTAssertLessThanOrEqual(maxAbsDifference(outHalf, out), 1e-3)
        let dy = random.array(ids.count * hidden)
        let dTable = [Float](repeating: 0, count: table.count).mutated { d in
            Embedding.backward(ids: ids, dOutput: dy, dTable: d, tokens: ids.count, hidden: hidden)
        }
        checkGradient("dTable", at: table, analytic: dTable, samples: 100) { t in
            weightedSum([Float](repeating: 0, count: ids.count * hidden).mutated { y in
                Embedding.forward(ids: ids, table: t, output: y, tokens: ids.count, hidden: hidden)
            }, dy)
        }
    }

    // MARK: - RMSNorm

    /// Forward equals the Double oracle to 1e-5; dx and dw equal finite differences.
    func testRMSNormForwardAndBackward() {
        var random = TestRandom(seed: 4)
        let tokens = 5, hidden = 8, eps: Float = 1e-5
        let x = random.array(tokens * hidden, scale: 2), w = random.array(hidden).map { 1 + $0 * 0.5 }
        func run(_ x: [Float], _ w: [Float]) -> [Float] {
            var rstd = [Float](repeating: 0, count: tokens)
            return [Float](repeating: 0, count: x.count).mutated { y in
                RMSNorm.forward(x: x, weight: w, output: y, rstd: &rstd, tokens: tokens, hidden: hidden, eps: eps)
            }
        }
        let y = run(x, w)
        XCTAssertLessThanOrEqual(maxAbsDifference(y, RMSNorm.forwardNaive(x: x, weight: w, tokens: tokens, hidden: hidden, eps: eps)), 1e-5)
        var rstd = [Float](repeating: 0, count: tokens)
        _ = [Float](repeating: 0, count: x.count).mutated { out in
            RMSNorm.forward(x: x, weight: w, output: out, rstd: &rstd, tokens: tokens, hidden: hidden, eps: eps)
        }
        let applied = [Float](repeating: 0, count: x.count).mutated { out in
            RMSNorm.apply(x: x, weight: w, rstd: rstd, output: out, tokens: tokens, hidden: hidden)
        }
        XCTAssertEqual(applied, y)
        let dy = random.array(x.count)
        var dx = [Float](repeating: 0, count: x.count), dw = [Float](repeating: 0, count: hidden)
        RMSNorm.backward(x: x, weight: w, rstd: rstd, dOutput: dy, dx: &dx, dWeight: &dw, tokens: tokens, hidden: hidden, accumulate: false)
        checkGradient("dx", at: x, analytic: dx, samples: 40, step: 1e-3) { weightedSum(run($0, w), dy) }
        checkGradient("dw", at: w, analytic: dw, step: 1e-3) { weightedSum(run(x, $0), dy) }
        // accumulate: true adds onto what is there.
        var dx2 = [Float](repeating: 1, count: x.count), dw2 = [Float](repeating: 0, count: hidden)
        RMSNorm.backward(x: x, weight: w, rstd: rstd, dOutput: dy, dx: &dx2, dWeight: &dw2, tokens: tokens, hidden: hidden, accumulate: true)
        XCTAssertLessThanOrEqual(maxAbsDifference(dx2.map { $0 - 1 }, dx), 1e-6)
    }

    // MARK: - SwiGLU

    func testSwiGLUForwardAndBackward() {
        var random = TestRandom(seed: 5)
        let count = 40
        let gate = random.array(count, scale: 4), up = random.array(count, scale: 2)
        func run(_ g: [Float], _ u: [Float]) -> [Float] {
            [Float](repeating: 0, count: count).mutated { SwiGLU.forward(gate: g, up: u, output: $0, count: count) }
        }
        XCTAssertLessThanOrEqual(maxAbsDifference(run(gate, up), SwiGLU.forwardNaive(gate: gate, up: up)), 1e-5)
        let dy = random.array(count)
        var dGate = [Float](repeating: 0, count: count), dUp = dGate
        SwiGLU.backward(gate: gate, up: up, dOutput: dy, dGate: &dGate, dUp: &dUp, count: count)
        checkGradient("dGate", at: gate, analytic: dGate, samples: count, step: 1e-3) { weightedSum(run($0, up), dy) }
        checkGradient("dUp", at: up, analytic: dUp, samples: count, step: 1e-3) { weightedSum(run(gate, $0), dy) }
    }

    // MARK: - Residual

    func testResidualAddAndBackward() {
        let a: [Float] = [1, 2, 3], b: [Float] = [0.5, -1, 4]
        let out = [Float](repeating: 0, count: 3).mutated { Residual.forward(a, b, output: $0, count: 3) }
        XCTAssertEqual(out, [1.5, 1, 7])
        var da: [Float] = [1, 1, 1], db: [Float] = [0, 0, 0]
        Residual.backward(dOutput: [0.25, 0.5, 2], da: &da, db: &db, count: 3)
        XCTAssertEqual(da, [1.25, 1.5, 3])
        XCTAssertEqual(db, [0.25, 0.5, 2])
    }

    // MARK: - Float16

    /// Round trip equals Swift's own Float16 rounding (round to nearest even), including
    /// subnormals, overflow to infinity, and signed zero.
    func testHalfConversionMatchesSwiftFloat16() {
        var random = TestRandom(seed: 6)
        var values = random.array(1000, scale: 70000)
        values += [0, -0, 1e-7, -3e-5, 6.1e-5, 65504, 65520, -1e9, 1, 0.1, 1.0 / 3]
        let encoded = Half.encode(values)
        #if !(os(macOS) && arch(x86_64))
        for (i, v) in values.enumerated() {
            XCTAssertEqual(encoded[i], Float16(v).bitPattern, "value \(v)")
        }
        #endif
        let decoded = Half.decode(encoded)
        for (i, v) in values.enumerated() where abs(v) < 65504 {
            XCTAssertLessThanOrEqual(abs(decoded[i] - v), max(abs(v) * 4.9e-4, 3e-8), "value \(v)")
        }
        var rounded = values
        rounded.withUnsafeMutableBufferPointer { Half.round($0.baseAddress!, count: $0.count) }
        XCTAssertEqual(rounded.map(\.bitPattern), decoded.map(\.bitPattern))
    }
}

/// The vectorised exp loops in CKernelSupport against Double exp.
final class VectorMathTests: XCTestCase {
    /// exp within 4e-7 relative over [-87, 88], exact 0 far below, +inf far above; softmax rows sum
    /// to 1 and log-sum-exp matches Double, for lengths that are and are not multiples of 16.
    func testExpSoftmaxAndLogSumExp() {
        var random = TestRandom(seed: 16)
        let x = random.array(1000, scale: 87) + [0, -0.5, 1e-8, 88]
        var y = [Float](repeating: 0, count: x.count)
        dpo_vexp(x, &y, x.count)
        for i in x.indices {
            let expected = exp(Double(x[i]))
            XCTAssertLessThanOrEqual(abs(Double(y[i]) - expected) / expected, 4e-7, "exp(\(x[i]))")
        }
        var extremes: [Float] = [-200, 200]
        dpo_vexp(extremes, &extremes, 2)
        XCTAssertEqual(extremes[0], 0)
        XCTAssertEqual(extremes[1], .infinity)
        for n in [1, 15, 16, 37] {
            let row = random.array(n, scale: 30)
            var softmax = row
            dpo_softmax_row(&softmax, n)
            let m = row.map(Double.init).max()!
            let z = row.reduce(0.0) { $0 + exp(Double($1) - m) }
            for i in 0..<n { XCTAssertEqual(Double(softmax[i]), exp(Double(row[i]) - m) / z, accuracy: 1e-6) }
            XCTAssertEqual(Double(dpo_logsumexp(row, n)), m + log(z), accuracy: 1e-5)
        }
    }
}

final class SwiGLUFusedTests: XCTestCase {
    /// The fused [gate | up] row layout gives the same values as separate gate and up buffers.
    func testFusedRowsMatchSeparateBuffers() {
        var random = TestRandom(seed: 18)
        let rows = 3, width = 21
        let gate = random.array(rows * width, scale: 3), up = random.array(rows * width), dOutput = random.array(rows * width)
        var gateUp = [Float](repeating: 0, count: rows * 2 * width)
        for r in 0..<rows {
            for j in 0..<width { gateUp[r * 2 * width + j] = gate[r * width + j]; gateUp[r * 2 * width + width + j] = up[r * width + j] }
        }
        var fused = [Float](repeating: 0, count: rows * width), separate = fused
        SwiGLU.forward(gateUp: gateUp, output: &fused, rows: rows, width: width)
        SwiGLU.forward(gate: gate, up: up, output: &separate, count: rows * width)
        XCTAssertEqual(fused, separate)
        var dGateUp = [Float](repeating: .nan, count: gateUp.count)
        var dGate = [Float](repeating: 0, count: gate.count), dUp = dGate
        SwiGLU.backward(gateUp: gateUp, dOutput: dOutput, dGateUp: &dGateUp, rows: rows, width: width)
        SwiGLU.backward(gate: gate, up: up, dOutput: dOutput, dGate: &dGate, dUp: &dUp, count: rows * width)
        for r in 0..<rows {
            XCTAssertEqual(Array(dGateUp[(r * 2 * width)..<(r * 2 * width + width)]), Array(dGate[(r * width)..<((r + 1) * width)]))
            XCTAssertEqual(Array(dGateUp[(r * 2 * width + width)..<((r + 1) * 2 * width)]), Array(dUp[(r * width)..<((r + 1) * width)]))
        }
    }
}

/// SwiGLU's backward may write its gradient over its input (the fp16 model's in-place gate|up gradient).
final class SwiGLUInPlaceTests: XCTestCase {
    /// In place and out of place agree exactly, including a row width that is not a multiple of 16.
    func testInPlaceBackwardEqualsOutOfPlace() {
        var random = TestRandom(seed: 61)
        let rows = 3, width = 37
        let gateUp = random.array(rows * 2 * width, scale: 3), dOutput = random.array(rows * width)
        var outOfPlace = [Float](repeating: 0, count: gateUp.count)
        SwiGLU.backward(gateUp: gateUp, dOutput: dOutput, dGateUp: &outOfPlace, rows: rows, width: width)
        var inPlace = gateUp
        inPlace.withUnsafeMutableBufferPointer { buffer in
            SwiGLU.backward(gateUp: buffer.baseAddress!, dOutput: dOutput, dGateUp: buffer.baseAddress!, rows: rows, width: width)
        }
        XCTAssertEqual(inPlace, outOfPlace)
    }
}
