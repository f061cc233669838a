@testable import Distributed
import TestSupport

/// The gradient vector the reduction tests share: five layer groups of 300, 1000, 1000, 1000
/// and 257 elements (3,557 in all; backward reports them last to first), and random gradients
/// that a test reduces in place.
enum ReductionFixture {
    static let groupSizes = [300, 1_000, 1_000, 1_000, 257]
    static let groupRanges: [Range<Int>] = {
        var ranges: [Range<Int>] = [], offset = 0
        for n in groupSizes { ranges.append(offset..<(offset + n)); offset += n }
        return ranges
    }()
    static let total = groupSizes.reduce(0, +)

    /// `total` uniform values in [-scale, scale) from `seed`, handed to `reduce` to change in
    /// place; returns them before and after.
    static func gradients(
        seed: UInt64, scale: Float, _ reduce: (UnsafeMutableBufferPointer<Float>) throws -> Void
    ) rethrows -> (original: [Float], reduced: [Float]) {
        var random = TestRandom(seed: seed)
        let original = random.array(total, scale: scale)
        var reduced = original
        try reduced.withUnsafeMutableBufferPointer { try reduce($0) }
        return (original, reduced)
    }
}
