import XCTest
import TestSupport
@testable import Kernels

/// The per-row hooks of the threaded element-wise kernels (how the fp16 model converts a saved
/// activation inside a pass that reads it anyway): at 1 and 2 threads, on shapes that split, each
/// row's hook runs exactly once, `afterRow` sees the row finished and `beforeRow` can still supply
/// it, and the kernel's results are bit-identical to the call without hooks.
final class RowHookTests: XCTestCase {
    /// 96 tokens: at least 2 x 32, so 2 threads split the norms' rows.
    let tokens = 96, hidden = 80

    func withThreads(_ body: (Int) throws -> Void) rethrows {
        let previous = BLAS.threads
        defer { BLAS.threads = previous }
        for threads in [1, 2] {
            BLAS.threads = threads
            try body(threads)
        }
    }

    /// A row-indexed record the hooks write from any thread (each row by one thread).
    final class RowLog {
        let calls: UnsafeMutableBufferPointer<Int>
        init(rows: Int) { calls = .allocate(capacity: rows); calls.initialize(repeating: 0) }
        deinit { calls.deallocate() }
        var everyRowOnce: Bool { calls.allSatisfy { $0 == 1 } }
    }

    /// RMSNorm.forward's `afterRow(n)` sees row n's output and rstd written; apply's `beforeRow(n)`
    /// fills x's row n just in time; backward's `beforeRow` runs once per row.
    func testRMSNormHooks() {
        var random = TestRandom(seed: 71)
        let tokens = tokens, hidden = hidden
        let x = random.array(tokens * hidden, scale: 2), weight = random.array(hidden), dy = random.array(tokens * hidden)
        withThreads { threads in
            var plain = [Float](repeating: 0, count: x.count), rstd = [Float](repeating: 0, count: tokens)
            RMSNorm.forward(x: x, weight: weight, output: &plain, rstd: &rstd, tokens: tokens, hidden: hidden, eps: 1e-5)
            var hooked = [Float](repeating: 0, count: x.count), hookedRstd = [Float](repeating: 0, count: tokens)
            let log = RowLog(rows: tokens)
            var seen = [Float](repeating: .nan, count: x.count)
            hooked.withUnsafeMutableBufferPointer { out in
                hookedRstd.withUnsafeMutableBufferPointer { r in
                    seen.withUnsafeMutableBufferPointer { s in
                        let out = out.baseAddress!, r = r.baseAddress!, s = s.baseAddress!
                        RMSNorm.forward(x: x, weight: weight, output: out, rstd: r, tokens: tokens, hidden: hidden, eps: 1e-5) { n in
                            log.calls[n] += 1
                            // The row is finished: its output and rstd are the plain call's.
                            (s + n * hidden).update(from: out + n * hidden, count: hidden)
                            XCTAssertEqual(r[n], rstd[n])
                        }
                    }
                }
            }
            XCTAssertTrue(log.everyRowOnce, "\(threads) threads")
            XCTAssertEqual(hooked.map(\.bitPattern), plain.map(\.bitPattern))
            XCTAssertEqual(seen.map(\.bitPattern), plain.map(\.bitPattern))

            // apply: x arrives row by row through beforeRow.
            var applied = [Float](repeating: 0, count: x.count), late = [Float](repeating: .nan, count: x.count)
            let applyLog = RowLog(rows: tokens)
            late.withUnsafeMutableBufferPointer { l in
                let l = l.baseAddress!
                RMSNorm.apply(x: l, weight: weight, rstd: rstd, output: &applied, tokens: tokens, hidden: hidden) { n in
                    applyLog.calls[n] += 1
                    for j in 0..<hidden { l[n * hidden + j] = x[n * hidden + j] }
                }
            }
            XCTAssertTrue(applyLog.everyRowOnce)
            XCTAssertEqual(applied.map(\.bitPattern), plain.map(\.bitPattern))

            var dx = [Float](repeating: 0, count: x.count), dWeight = [Float](repeating: 0, count: hidden)
            RMSNorm.backward(x: x, weight: weight, rstd: rstd, dOutput: dy, dx: &dx, dWeight: &dWeight, tokens: tokens,
                             hidden: hidden, accumulate: false)
            var hookedDx = [Float](repeating: 0, count: x.count), hookedDWeight = [Float](repeating: 0, count: hidden)
            let backwardLog = RowLog(rows: tokens)
            RMSNorm.backward(x: x, weight: weight, rstd: rstd, dOutput: dy, dx: &hookedDx, dWeight: &hookedDWeight, tokens: tokens,
                             hidden: hidden, accumulate: false) { n in backwardLog.calls[n] += 1 }
            XCTAssertTrue(backwardLog.everyRowOnce)
            XCTAssertEqual(hookedDx.map(\.bitPattern), dx.map(\.bitPattern))
            XCTAssertEqual(hookedDWeight.map(\.bitPattern), dWeight.map(\.bitPattern))
        }
    }

    /// SwiGLU over gate|up rows: `beforeRow` supplies the input row, `afterRow` sees its output.
    func testSwiGLUHooks() {
        var random = TestRandom(seed: 72)
        let width = 300, tokens = 240  // rows of at least 2 x (1 << 15) / width: 2 threads split them
        let gateUp = random.array(tokens * 2 * width, scale: 3)
        withThreads { threads in
            var plain = [Float](repeating: 0, count: tokens * width)
            SwiGLU.forward(gateUp: gateUp, output: &plain, rows: tokens, width: width)
            var late = [Float](repeating: .nan, count: gateUp.count), hooked = [Float](repeating: 0, count: plain.count)
            var seen = [Float](repeating: .nan, count: plain.count)
            let before = RowLog(rows: tokens), after = RowLog(rows: tokens)
            late.withUnsafeMutableBufferPointer { l in
                hooked.withUnsafeMutableBufferPointer { o in
                    seen.withUnsafeMutableBufferPointer { s in
                        let l = l.baseAddress!, o = o.baseAddress!, s = s.baseAddress!
                        SwiGLU.forward(gateUp: l, output: o, rows: tokens, width: width, beforeRow: { r in
                            before.calls[r] += 1
                            for j in 0..<(2 * width) { l[r * 2 * width + j] = gateUp[r * 2 * width + j] }
                        }, afterRow: { r in
                            after.calls[r] += 1
                            (s + r * width).update(from: o + r * width, count: width)
                        })
                    }
                }
            }
            XCTAssertTrue(before.everyRowOnce && after.everyRowOnce, "\(threads) threads")
            XCTAssertEqual(hooked.map(\.bitPattern), plain.map(\.bitPattern))
            XCTAssertEqual(seen.map(\.bitPattern), plain.map(\.bitPattern))
        }
    }

    /// Rotary: the query and key heads of a q|k|v row rotated in one pass (heads = Q + K heads)
    /// equal two passes, the values untouched; `afterRow` sees each token's row rotated.
    func testRotaryOnePassOverQueryAndKeyHeadsWithAfterRow() {
        var random = TestRandom(seed: 73)
        let headDim = 8, heads = 4, kvHeads = 2, rows = 3, seqLen = 48  // 144 tokens: 2 threads split them
        let width = (heads + 2 * kvHeads) * headDim, n = rows * seqLen
        let rotary = Rotary(headDim: headDim, theta: 10000, maxPositions: 64)
        let x = random.array(n * width)
        let positions = (0..<n).map { Int32(($0 * 7) % 64) }
        withThreads { threads in
            for explicit in [false, true] {
                func rotate(_ p: UnsafeMutablePointer<Float>, heads: Int, afterRow: ((Int) -> Void)? = nil) {
                    if explicit {
                        rotary.forward(p, positions: positions, tokens: n, heads: heads, stride: width, afterRow: afterRow)
                    } else {
                        rotary.forward(p, rows: rows, seqLen: seqLen, heads: heads, stride: width, afterRow: afterRow)
                    }
                }
                let twoPasses = x.mutated { p in
                    rotate(p, heads: heads)
                    rotate(p + heads * headDim, heads: kvHeads)
                }
                var seen = [Float](repeating: .nan, count: x.count)
                let log = RowLog(rows: n)
                let onePass = x.mutated { p in
                    seen.withUnsafeMutableBufferPointer { s in
                        let s = s.baseAddress!
                        rotate(p, heads: heads + kvHeads) { t in
                            log.calls[t] += 1
                            (s + t * width).update(from: p + t * width, count: width)
                        }
                    }
                }
                XCTAssertTrue(log.everyRowOnce, "\(threads) threads, explicit positions \(explicit)")
                XCTAssertEqual(onePass.map(\.bitPattern), twoPasses.map(\.bitPattern))
                XCTAssertEqual(seen.map(\.bitPattern), twoPasses.map(\.bitPattern))
                XCTAssertNotEqual(onePass, x, "a rotation that changed nothing would prove nothing")
            }
        }
    }
}
