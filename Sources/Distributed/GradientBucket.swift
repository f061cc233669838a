/// A contiguous slice of the flat gradient buffer that is all-reduced as one message.
///
/// Buckets are formed walking the parameter groups in reverse (the order backward
/// finishes them: last group first), so the first bucket is ready first. A bucket never
/// exceeds the size limit: a group larger than the limit is split over several buckets,
/// and small neighbouring groups share one. Every element of every group is in exactly
/// one bucket.
public struct GradientBucket: Equatable, Sendable {
    /// Elements of the gradient buffer.
    public let range: Range<Int>
    /// Groups with elements in this bucket, in the order backward finishes them (descending).
    public let groups: [Int]

    public init(range: Range<Int>, groups: [Int]) {
        self.range = range
        self.groups = groups
    }

    /// The buckets of a reducer over `gradientCount` elements: `groupRanges` must tile the buffer
    /// in order; a bucket holds at most `bucketMegabytes` MiB of `wireBytes`-byte elements
    /// (`--bucket-mb`). Shared by `GradientReducer` and `GradientReduceScatter`.
    public static func plan(gradientCount: Int, groupRanges: [Range<Int>], bucketMegabytes: Double, wireBytes: Int) throws -> [GradientBucket] {
        guard bucketMegabytes > 0, bucketMegabytes.isFinite else {
            throw DistributedError.invalidGroups("--bucket-mb must be a positive number, got \(bucketMegabytes)")
        }
        guard let first = groupRanges.first, first.lowerBound == 0, groupRanges.last!.upperBound == gradientCount,
              zip(groupRanges, groupRanges.dropFirst()).allSatisfy({ $0.upperBound == $1.lowerBound })
        else {
            throw DistributedError.invalidGroups(
                "ranges must tile the gradient buffer of \(gradientCount) elements in order, got \(groupRanges)")
        }
        let maxElements = Swift.max(1, Int(bucketMegabytes * 1024 * 1024) / wireBytes)
        return try plan(groupRanges: groupRanges, maxElements: Swift.min(maxElements, Int(Int32.max)))
    }

    /// Buckets of at most `maxElements` elements over `groupRanges` (sorted ascending,
    /// non-overlapping; group g's gradients become final in the order last...first).
    /// Groups that are not adjacent in the buffer never share a bucket.
    public static func plan(groupRanges: [Range<Int>], maxElements: Int) throws -> [GradientBucket] {
        guard maxElements > 0 else { throw DistributedError.invalidGroups("bucket size must hold at least one element") }
        for g in groupRanges.indices.dropFirst() where groupRanges[g].lowerBound < groupRanges[g - 1].upperBound {
            throw DistributedError.invalidGroups(
                "group \(g) (\(groupRanges[g])) overlaps or precedes group \(g - 1) (\(groupRanges[g - 1])); ranges must be in layout order")
        }
        var buckets: [GradientBucket] = []
        var lower = 0, upper = 0
        var groups: [Int] = []
        func close() {
            if upper > lower { buckets.append(GradientBucket(range: lower..<upper, groups: groups)) }
            groups = []
        }
        for g in groupRanges.indices.reversed() {
            var remaining = groupRanges[g]
            if remaining.isEmpty { continue }
            if upper > lower && remaining.upperBound != lower { close() }
            if groups.isEmpty { lower = remaining.upperBound; upper = remaining.upperBound }
            while !remaining.isEmpty {
                if upper - lower == maxElements {
                    close()
                    lower = remaining.upperBound; upper = remaining.upperBound
                }
                let take = Swift.min(maxElements - (upper - lower), remaining.count)
                lower -= take
                if groups.last != g { groups.append(g) }
                remaining = remaining.lowerBound..<(remaining.upperBound - take)
            }
        }
        close()
        return buckets
    }
}
