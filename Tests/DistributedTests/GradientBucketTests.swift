import Distributed
import XCTest

/// Bucket formation: reverse group order, size limit, every element exactly once.
final class GradientBucketTests: XCTestCase {
    func ranges(_ sizes: [Int]) -> [Range<Int>] {
        var result: [Range<Int>] = [], offset = 0
        for n in sizes { result.append(offset..<(offset + n)); offset += n }
        return result
    }

    /// Every element of every group lies in exactly one bucket, no bucket exceeds the limit,
    /// buckets run from the end of the buffer to its start, and each bucket names exactly
    /// the groups it overlaps, in descending order.
    func checkInvariants(_ groupRanges: [Range<Int>], maxElements: Int, file: StaticString = #filePath, line: UInt = #line) throws {
        let buckets = try GradientBucket.plan(groupRanges: groupRanges, maxElements: maxElements)
        let total = groupRanges.last?.upperBound ?? 0
        var covered = [Int](repeating: 0, count: total)
        var previousLower = Int.max
        for bucket in buckets {
            XCTAssertLessThanOrEqual(bucket.range.count, maxElements, file: file, line: line)
            XCTAssertFalse(bucket.range.isEmpty, file: file, line: line)
            XCTAssertLessThanOrEqual(bucket.range.upperBound, previousLower, "reverse order", file: file, line: line)
            previousLower = bucket.range.lowerBound
            for i in bucket.range { covered[i] += 1 }
            let overlapping = groupRanges.indices.filter { groupRanges[$0].overlaps(bucket.range) }
            XCTAssertEqual(bucket.groups, overlapping.reversed(), file: file, line: line)
        }
        for g in groupRanges.indices { for i in groupRanges[g] { XCTAssertEqual(covered[i], 1, "element \(i) of group \(g)", file: file, line: line) } }
    }

    func testSmallGroupsShareBucketsInReverseOrder() throws {
        let buckets = try GradientBucket.plan(groupRanges: ranges([4, 3, 3, 5]), maxElements: 8)
        // From the end: group 3 (5) + group 2 (3) = 8 fill the first bucket; groups 1 and 0 follow.
        XCTAssertEqual(buckets, [
            GradientBucket(range: 7..<15, groups: [3, 2]),
            GradientBucket(range: 0..<7, groups: [1, 0]),
        ])
    }

    func testLargeGroupIsSplitAndSharesWithNeighbours() throws {
        let buckets = try GradientBucket.plan(groupRanges: ranges([2, 10, 1]), maxElements: 4)
        XCTAssertEqual(buckets, [
            GradientBucket(range: 9..<13, groups: [2, 1]),
            GradientBucket(range: 5..<9, groups: [1]),
            GradientBucket(range: 1..<5, groups: [1, 0]),
            GradientBucket(range: 0..<1, groups: [0]),
        ])
    }

    func testInvariantsOverManyShapes() throws {
        try checkInvariants(ranges([1]), maxElements: 1)
        try checkInvariants(ranges([5, 0, 7, 1, 1, 13]), maxElements: 3)
        try checkInvariants(ranges([100, 37, 37, 37, 99]), maxElements: 64)
        try checkInvariants(ranges([7_001, 2_500, 12_000, 3, 2_621, 9_999]), maxElements: 2_621)
        try checkInvariants(ranges([10, 20]), maxElements: 1_000)
        // Non-adjacent groups never share a bucket.
        let gapped = [0..<5, 8..<10, 10..<12]
        let buckets = try GradientBucket.plan(groupRanges: gapped, maxElements: 100)
        XCTAssertEqual(buckets, [GradientBucket(range: 8..<12, groups: [2, 1]), GradientBucket(range: 0..<5, groups: [0])])
    }

    func testRejectsOverlapAndEmptyLimit() {
        XCTAssertThrowsError(try GradientBucket.plan(groupRanges: [0..<5, 4..<8], maxElements: 4))
        XCTAssertThrowsError(try GradientBucket.plan(groupRanges: [0..<5], maxElements: 0))
    }
}
