@testable import Distributed
import Foundation
import TestSupport
import XCTest

/// ZeRO-2's reduction on pretend worlds (`MirroredCommunicator`): the same shard as ZeRO-1's
/// `GradientReduceScatter` for one micro-batch, the sum of the micro-batches' means for several,
/// the window's pages handed back, inf/NaN of any micro-batch reported. The 2-rank MPI runs are
/// `ZeroTwoTrainingTests`.
final class PartitionedGradientsTests: XCTestCase {
    /// Five groups over 40 000 floats (160 KB: many 4 KiB pages), buckets of 4 800 fp32 elements.
    let groupRanges = [0..<9_000, 9_000..<19_000, 19_000..<29_000, 29_000..<39_000, 39_000..<40_000]
    let total = 40_000
    let bucketMegabytes = 19_200.0 / 1_048_576

    /// Backward's part: writes `values` into the window (as `+=` from zero) and marks every group final.
    func backward(_ gradients: PartitionedGradients, _ values: [Float]) {
        for group in groupRanges.indices.reversed() {
            for i in groupRanges[group] { gradients.gradients[i] += values[i] }
            gradients.groupReady(group)
        }
    }

    /// ZeRO-1's shard of the mean of `values` (`GradientReduceScatter`, every group ready in
    /// backward order): what ZeRO-2's shard is compared with.
    func zeroOneShard(_ world: MirroredCommunicator, _ values: [Float], groupRanges: [Range<Int>], bucketMegabytes: Double,
                      wireType: GradientReducer.WireType) throws -> [Float] {
        var local = values
        return try local.withUnsafeMutableBufferPointer { g in
            let scatter = try GradientReduceScatter(communicator: world, gradients: g, groupRanges: groupRanges,
                                                    bucketMegabytes: bucketMegabytes, wireType: wireType)
            for group in groupRanges.indices.reversed() { scatter.groupReady(group) }
            XCTAssertFalse(scatter.finish().nonFinite)
            return Array(scatter.shardGradients)
        }
    }

    /// Resident pages of the window (mincore).
    func residentPages(_ window: GradientWindow) -> Int {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let bytes = window.buffer.count * 4
        var flags = [UInt8](repeating: 0, count: (bytes + page - 1) / page)
        XCTAssertEqual(mincore(UnsafeMutableRawPointer(window.buffer.baseAddress!), bytes, &flags), 0)
        return flags.filter { $0 & 1 != 0 }.count
    }

    func testOneMicroBatchGivesZeroOnesShardBitForBitAndReleasesTheWindow() throws {
        for wireType in GradientReducer.WireType.allCases {
            do {
                let world = MirroredCommunicator(size: 2)
                var random = TestRandom(seed: 5)
                let original = random.array(total, scale: 3)
                let expected = try zeroOneShard(world, original, groupRanges: groupRanges, bucketMegabytes: bucketMegabytes, wireType: wireType)
                let partitioned = try PartitionedGradients(communicator: world, count: total, groupRanges: groupRanges,
                                                           bucketMegabytes: bucketMegabytes, wireType: wireType)
                XCTAssertGreaterThan(partitioned.buckets.count, 4, "the test needs several buckets")
                partitioned.beginStep()
                backward(partitioned, original)
                let reduction = partitioned.finish()
                XCTAssertFalse(reduction.nonFinite)
                XCTAssertEqual(reduction.bucketsStartedEarly, partitioned.buckets.count)
                XCTAssertEqual(Array(partitioned.shardGradients), expected, "\(wireType)")
                XCTAssertEqual(residentPages(partitioned.window), 0, "no fp32 gradient page is left after the micro-batch")
                XCTAssertTrue(partitioned.gradients.allSatisfy { $0 == 0 }, "the window reads as zeros for the next backward")
            }
        }
    }

    /// With fp16 on the wire a bucket's pages go as soon as it is rounded into its slot: after
    /// the last group but one, only the last group's pages (and the bucket ends) are resident.
    func testBucketPagesAreReleasedDuringBackward() throws {
        let world = MirroredCommunicator(size: 2)
        let partitioned = try PartitionedGradients(communicator: world, count: total, groupRanges: groupRanges,
                                                   bucketMegabytes: bucketMegabytes / 2, wireType: .fp16)  // 4 800 fp16 elements
        partitioned.beginStep()
        let values = [Float](repeating: 0.25, count: total)
        for group in groupRanges.indices.reversed().dropLast() {
            for i in groupRanges[group] { partitioned.gradients[i] += values[i] }
            partitioned.groupReady(group)
        }
        let written = (total - groupRanges[0].count) * 4 / 4096
        let resident = residentPages(partitioned.window)
        XCTAssertLessThan(resident, written / 2, "\(resident) of \(written) written pages still resident")
        for i in groupRanges[0] { partitioned.gradients[i] += values[i] }
        partitioned.groupReady(0)
        XCTAssertFalse(partitioned.finish().nonFinite)
        XCTAssertTrue(partitioned.shardGradients.allSatisfy { $0 == 0.25 }, "the mean of two mirrored ranks")
    }

    /// Three micro-batches: the shard is the sum of their means (fp32 exactly here: each mean is
    /// exact on mirrored ranks, and the sums of these binary fractions are exact), and the
    /// window is zero between them, so nothing is counted twice.
    func testMicroBatchesAddTheirMeansInTheShard() throws {
        for wireType in GradientReducer.WireType.allCases {
            let world = MirroredCommunicator(size: 2)
            let partitioned = try PartitionedGradients(communicator: world, count: total, groupRanges: groupRanges,
                                                       bucketMegabytes: bucketMegabytes, wireType: wireType)
            var random = TestRandom(seed: 9)
            let batches = (0..<3).map { _ in random.array(total, scale: 1).map { ($0 * 256).rounded() / 256 } }
            for _ in 0..<2 {  // two steps: the second starts from a fresh shard
                partitioned.beginStep()
                for batch in batches {
                    backward(partitioned, batch)
                    XCTAssertFalse(partitioned.finish().nonFinite)
                }
                let shard = partitioned.shard
                for (k, i) in shard.enumerated() {
                    XCTAssertEqual(partitioned.shardGradients[k], batches[0][i] + batches[1][i] + batches[2][i], "\(wireType) element \(i)")
                }
            }
        }
    }

    /// A tied head (group 0's range, written before any other group): reduced when the head's
    /// group (the last) is ready, its elements zero again before the embedding writes them, and
    /// reduced again with the embedding's buckets (one of which crosses group 0's end and is
    /// split there); the shard is the sum of both parts' means (exact here: binary fractions).
    func testTiedHeadIsReducedEarlyAndTheEmbeddingPassAdded() throws {
        for wireType in GradientReducer.WireType.allCases {
            let world = MirroredCommunicator(size: 2)
            let partitioned = try PartitionedGradients(communicator: world, count: total, groupRanges: groupRanges,
                                                       bucketMegabytes: bucketMegabytes, wireType: wireType, tiedHead: groupRanges[0])
            var random = TestRandom(seed: 13)
            let head = random.array(total, scale: 1).map { ($0 * 256).rounded() / 256 }
            let rest = random.array(total, scale: 1).map { ($0 * 256).rounded() / 256 }
            for _ in 0..<2 {  // a second step starts over
                partitioned.beginStep()
                for i in groupRanges[0] { partitioned.gradients[i] += head[i] }
                for group in groupRanges.indices.reversed().dropLast() {
                    for i in groupRanges[group] { partitioned.gradients[i] += rest[i] }
                    partitioned.groupReady(group)
                }
                XCTAssertTrue(groupRanges[0].allSatisfy { partitioned.gradients[$0] == 0 }, "\(wireType): the head pass has gone")
                for i in groupRanges[0] { partitioned.gradients[i] += rest[i] }
                partitioned.groupReady(0)
                XCTAssertFalse(partitioned.finish().nonFinite)
                XCTAssertEqual(partitioned.shard, 0..<20_000)
                for (k, i) in partitioned.shard.enumerated() {
                    XCTAssertEqual(partitioned.shardGradients[k], groupRanges[0].contains(i) ? head[i] + rest[i] : rest[i], "\(wireType) element \(i)")
                }
            }
        }
    }

    /// The tied plan: the head's own buckets first (ready with the head group, ascending: the
    /// order the LM head's panels finish them), then the plan with the bucket that crossed the
    /// head's end split there.
    func testTiedPlanSplitsTheBucketCrossingTheHeadsEnd() throws {
        let plan = try GradientBucket.plan(groupRanges: groupRanges, maxElements: 4_800)
        XCTAssertTrue(plan.contains { $0.range.contains(8_999) && $0.range.contains(9_000) }, "the test needs a crossing bucket")
        let (head, split) = try PartitionedGradients.tiedPlan(plan, head: groupRanges[0], headGroup: 4)
        XCTAssertEqual(head.map(\.range), [0..<4_200, 4_200..<9_000])
        XCTAssertTrue(head.allSatisfy { $0.groups == [4] })
        XCTAssertEqual(split.count, plan.count + 1)
        XCTAssertFalse(split.contains { $0.range.contains(8_999) && $0.range.contains(9_000) })
        XCTAssertEqual(split.map(\.range.count).reduce(0, +), total, "the split plan still covers every element once")
    }

    /// A tied head of 40 000 floats (39 pages) written in "vocabulary panels" of 1 000 floats and
    /// reported panel by panel (`headRowsFinished`), as the LM head's backward does: each head
    /// bucket (4 800 elements) goes as soon as its rows are done, so the window never holds
    /// more of the head than a bucket and the pages at bucket ends; and the shard is
    /// bit-identical to the unreported run's (head buckets started with the head's group), with
    /// values that round (the next bucket's prefault must not touch rows already written).
    func testTiedHeadReportedByPanelsGoesABucketAtATimeWithTheSameShard() throws {
        let ranges = [0..<40_000, 40_000..<50_000, 50_000..<60_000, 60_000..<61_000]
        let count = 61_000, panel = 1_000, pageFloats = Int(sysconf(Int32(_SC_PAGESIZE))) / 4
        var random = TestRandom(seed: 17)
        let head = random.array(count, scale: 3), rest = random.array(count, scale: 3)
        for wireType in GradientReducer.WireType.allCases {
            var shards: [[Float]] = []
            for reported in [false, true] {
                let world = MirroredCommunicator(size: 2)
                world.testsToComplete = 1
                let partitioned = try PartitionedGradients(
                    communicator: world, count: count, groupRanges: ranges,
                    bucketMegabytes: 4_800.0 * Double(wireType.bytes) / 1_048_576, wireType: wireType, tiedHead: ranges[0])
                for _ in 0..<2 {  // a second micro-batch adds its means: the head pass must start over
                    partitioned.beginBackward()
                    var mostResident = 0
                    for start in stride(from: 0, to: ranges[0].upperBound, by: panel) {
                        for i in start..<(start + panel) { partitioned.gradients[i] += head[i] }
                        if reported { partitioned.headRowsFinished(start..<(start + panel)); partitioned.progress() }
                        mostResident = max(mostResident, residentPages(partitioned.window))
                    }
                    if reported {
                        // The bucket being written (5 pages, its unwritten rows prefaulted), its two end
                        // pages, and one page each of the 8 buckets sent before it (shared with a neighbour).
                        let bound = 4_800 / pageFloats + 1 + 2 + 8
                        XCTAssertLessThanOrEqual(mostResident, bound, "\(wireType): the head's pages held at once")
                    } else {
                        XCTAssertGreaterThanOrEqual(mostResident, 40_000 / pageFloats, "\(wireType): unreported, the whole head is held")
                    }
                    for group in ranges.indices.reversed().dropLast() {
                        for i in ranges[group] { partitioned.gradients[i] += rest[i] }
                        partitioned.groupReady(group)
                    }
                    for i in ranges[0] { partitioned.gradients[i] += rest[i] }
                    partitioned.groupReady(0)
                    XCTAssertFalse(partitioned.finish().nonFinite)
                }
                shards.append(Array(partitioned.shardGradients))
                partitioned.beginStep()
            }
            XCTAssertEqual(shards[1], shards[0], "\(wireType): reported panel by panel, the shard is bit-identical")
            XCTAssertNotEqual(shards[0].first, 0)
        }
    }

    /// The untied plan: the head's own buckets first (ascending), then the plan with the head's
    /// range cut out of every bucket, each element still covered once.
    func testUntiedPlanCutsTheHeadOutOfThePlan() throws {
        let ranges = [0..<9_000, 9_000..<19_000, 19_000..<61_000], head = 20_000..<61_000
        let plan = try GradientBucket.plan(groupRanges: ranges, maxElements: 4_800)
        let (headBuckets, rest) = try PartitionedGradients.untiedPlan(plan, head: head, headGroup: 2)
        XCTAssertEqual(headBuckets.first?.range.lowerBound, head.lowerBound)
        XCTAssertEqual(headBuckets.last?.range.upperBound, head.upperBound)
        XCTAssertTrue(zip(headBuckets, headBuckets.dropFirst()).allSatisfy { $0.range.upperBound == $1.range.lowerBound })
        XCTAssertTrue(headBuckets.allSatisfy { $0.groups == [2] && $0.range.count <= 4_800 })
        XCTAssertFalse(rest.contains { $0.range.overlaps(head) })
        let covered = (headBuckets + rest).map(\.range).sorted { $0.lowerBound < $1.lowerBound }
        XCTAssertEqual(covered.first?.lowerBound, 0)
        XCTAssertTrue(zip(covered, covered.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound }, "every element once")
        XCTAssertEqual(covered.last?.upperBound, 61_000)
    }

    /// An untied head (the last group's 40 000 floats after a 1 000-float final norm), written in
    /// panels of 1 000 and reported panel by panel as the LM head's backward does: each head
    /// bucket goes as soon as its rows are done, so the window never holds more of the head than
    /// a bucket and the pages at bucket ends; it is reduced once (no embedding pass adds to it);
    /// and the shard is bit-identical to ZeRO-1's `GradientReduceScatter` of the same gradients.
    func testUntiedHeadReportedByPanelsGoesABucketAtATimeAndMatchesZeroOne() throws {
        let ranges = [0..<10_000, 10_000..<20_000, 20_000..<61_000], head = 21_000..<61_000
        let count = 61_000, panel = 1_000, pageFloats = Int(sysconf(Int32(_SC_PAGESIZE))) / 4
        var random = TestRandom(seed: 19)
        let values = random.array(count, scale: 3)
        for wireType in GradientReducer.WireType.allCases {
            let bucketMegabytes = 4_800.0 * Double(wireType.bytes) / 1_048_576
            let world = MirroredCommunicator(size: 2)
            let expected = try zeroOneShard(world, values, groupRanges: ranges, bucketMegabytes: bucketMegabytes, wireType: wireType)
            world.testsToComplete = 1
            let partitioned = try PartitionedGradients(communicator: world, count: count, groupRanges: ranges,
                                                       bucketMegabytes: bucketMegabytes, wireType: wireType, untiedHead: head)
            partitioned.beginStep()
            partitioned.beginBackward()
            var mostResident = 0
            for start in stride(from: head.lowerBound, to: head.upperBound, by: panel) {
                for i in start..<(start + panel) { partitioned.gradients[i] += values[i] }
                partitioned.headRowsFinished(start..<(start + panel))
                partitioned.progress()
                mostResident = max(mostResident, residentPages(partitioned.window))
            }
            // The last group's pages outside the head (prefaulted), the bucket being written, its
            // two end pages, and one page each of the 8 head buckets sent before it.
            let bound = (ranges[2].count - head.count) / pageFloats + 1 + 4_800 / pageFloats + 1 + 2 + 8
            XCTAssertLessThanOrEqual(mostResident, bound, "\(wireType): the head's pages held at once")
            for i in ranges[2].lowerBound..<head.lowerBound { partitioned.gradients[i] += values[i] }
            for group in ranges.indices.reversed() {
                if group < 2 { for i in ranges[group] { partitioned.gradients[i] += values[i] } }
                partitioned.groupReady(group)
            }
            let reduction = partitioned.finish()
            XCTAssertFalse(reduction.nonFinite)
            XCTAssertEqual(Array(partitioned.shardGradients), expected, "\(wireType): the same shard as ZeRO-1")
            XCTAssertEqual(residentPages(partitioned.window), 0)
        }
    }

    /// An inf in the second micro-batch is reported: fp32 finds it before sending (here on
    /// elements rank 1 owns), fp16 in the sum this rank receives (the owner's check; the ranks
    /// then agree in `finish`).
    func testNonFiniteMicroBatchIsReported() throws {
        for wireType in GradientReducer.WireType.allCases {
            let world = MirroredCommunicator(size: 2)
            let partitioned = try PartitionedGradients(communicator: world, count: total, groupRanges: groupRanges,
                                                       bucketMegabytes: bucketMegabytes, wireType: wireType)
            partitioned.beginStep()
            var values = [Float](repeating: 0.5, count: total)
            backward(partitioned, values)
            XCTAssertFalse(partitioned.finish().nonFinite)
            values[wireType == .fp32 ? 35_000 : 5_000] = .infinity
            backward(partitioned, values)
            XCTAssertTrue(partitioned.finish().nonFinite, "\(wireType)")
        }
    }
}
