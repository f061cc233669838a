@testable import Distributed
import TestSupport
import XCTest

/// The fp16 sum op against an exact (double) reference: every addition of two halves must
/// be correctly rounded, for odd lengths (vector tails) and both code paths.
final class HalfPrecisionArithmeticTests: XCTestCase {
    override func tearDown() { HalfPrecisionArithmetic.forcePortable(false) }

    /// Random finite halves of magnitude 2^-14 ... 2^8 (normal range; sums stay finite).
    func randomHalves(_ count: Int, seed: UInt64) -> [UInt16] {
        var random = TestRandom(seed: seed)
        return (0..<count).map { _ in
            let r = random.next()
            return UInt16((r & 1) << 15) | UInt16(1 + (r >> 8) % 23) << 10 | UInt16((r >> 20) & 0x3ff)
        }
    }

    func value(_ bits: UInt16) -> Double { Double(Float(Float16(bitPattern: bits))) }

    func checkSum(count: Int, portable: Bool) {
        HalfPrecisionArithmetic.forcePortable(portable)
        let a = randomHalves(count, seed: UInt64(count) * 2 + 1), b = randomHalves(count, seed: UInt64(count) * 2 + 2)
        var sum = b
        a.withUnsafeBufferPointer { x in sum.withUnsafeMutableBufferPointer { HalfPrecisionArithmetic.add(x, into: $0) } }
        for i in 0..<count {
            let exact = value(a[i]) + value(b[i])
            // Within half an ulp of the exact sum ...
            let ulp = Double(Float(Float16(bitPattern: sum[i]).ulp))
            XCTAssertLessThanOrEqual(abs(value(sum[i]) - exact), ulp / 2,
                                     "element \(i) of \(count) (portable \(portable)): \(value(a[i])) + \(value(b[i])) = \(value(sum[i])), exact \(exact)")
            // ... and exactly the correctly rounded half (ties to even): the double sum of two
            // halves is exact, and Float16(Double) rounds once.
            XCTAssertEqual(sum[i], Float16(exact).bitPattern, "element \(i) of \(count) (portable \(portable))")
            if sum[i] != Float16(exact).bitPattern { return }
        }
    }

    func testSumIsCorrectlyRoundedForOddLengthsVectorPath() {
        for count in [1, 7, 8, 15, 16, 17, 33, 1001] { checkSum(count: count, portable: false) }
    }

    func testSumIsCorrectlyRoundedForOddLengthsPortablePath() {
        for count in [1, 7, 17, 1001] { checkSum(count: count, portable: true) }
    }

    func testSumPropagatesInfinityAndNaN() {
        for portable in [false, true] {
            HalfPrecisionArithmetic.forcePortable(portable)
            let a: [UInt16] = [0x7c00, 0x3c00, 0x7e00, 0x7bff, 0xfc00]
            var b: [UInt16] = [0x3c00, 0xfc00, 0x3c00, 0x7bff, 0x7c00]  // inf+1, 1-inf, NaN+1, max+max, -inf+inf
            a.withUnsafeBufferPointer { x in b.withUnsafeMutableBufferPointer { HalfPrecisionArithmetic.add(x, into: $0) } }
            let result = b.map { Float(Float16(bitPattern: $0)) }
            XCTAssertEqual(result[0], .infinity)
            XCTAssertEqual(result[1], -.infinity)
            XCTAssertTrue(result[2].isNaN)
            XCTAssertEqual(result[3], .infinity, "65504 + 65504 overflows to inf")
            XCTAssertTrue(result[4].isNaN)
        }
    }

    func testScaledConversionAndCheckedWidening() {
        for portable in [false, true] {
            HalfPrecisionArithmetic.forcePortable(portable)
            let source: [Float] = (0..<37).map { Float($0) * 0.75 - 9 } + [1e6]
            var halves = [UInt16](repeating: 0, count: source.count)
            source.withUnsafeBufferPointer { s in
                halves.withUnsafeMutableBufferPointer { HalfPrecisionArithmetic.convert(s, scale: 0.5, into: $0) }
            }
            for i in 0..<37 { XCTAssertEqual(Float(Float16(bitPattern: halves[i])), source[i] * 0.5, "exactly representable") }
            var widened = [Float](repeating: 0, count: source.count)
            let nonFinite = halves.withUnsafeBufferPointer { h in
                widened.withUnsafeMutableBufferPointer { HalfPrecisionArithmetic.widen(h, into: $0) }
            }
            XCTAssertTrue(nonFinite, "5e5 does not fit a half: inf must be reported")
            XCTAssertEqual(Array(widened.prefix(37)), source.prefix(37).map { $0 * 0.5 })
            let finite = halves.withUnsafeBufferPointer { h in
                widened.withUnsafeMutableBufferPointer {
                    HalfPrecisionArithmetic.widen(UnsafeBufferPointer(rebasing: h[0..<37]), into: UnsafeMutableBufferPointer(rebasing: $0[0..<37]))
                }
            }
            XCTAssertFalse(finite)
        }
    }
}
