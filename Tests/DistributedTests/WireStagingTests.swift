@testable import Distributed
import TestSupport
import XCTest

/// fp16 on the wire stages a few buckets, not the whole gradient vector: at most
/// `WireStaging.defaultSlotCount` buckets are in flight (the oldest is waited for before one
/// more starts), their slots are reused, and the means are those of the unlimited schedule.
final class WireStagingTests: XCTestCase {
    let groupRanges = ReductionFixture.groupRanges
    let total = ReductionFixture.total
    /// 600 fp16 elements per bucket: 8 buckets (groups split and not shared across gaps).
    let bucketMegabytes = 1_200.0 / 1_048_576

    func testAllReduceStagesTwoBucketsAndReusesTheirSlots() throws {
        let world = MirroredCommunicator(size: 2)
        world.testsToComplete = 1_000  // nothing completes by MPI_Test: only the in-flight limit frees a slot
        let (original, gradients) = try ReductionFixture.gradients(seed: 21, scale: 3) { g in
            let reducer = try GradientReducer(communicator: world, gradients: g, groupRanges: groupRanges,
                                              bucketMegabytes: bucketMegabytes, wireType: .fp16)
            let largest = try XCTUnwrap(reducer.buckets.map(\.range.count).max())
            XCTAssertGreaterThan(reducer.buckets.count, WireStaging.defaultSlotCount, "the test needs more buckets than slots")
            XCTAssertEqual(reducer.stagingBytes, WireStaging.defaultSlotCount * largest * 2)
            XCTAssertLessThan(reducer.stagingBytes, total * 2)
            for group in groupRanges.indices.reversed() { reducer.groupReady(group) }
            XCTAssertFalse(reducer.finish().nonFinite)
            XCTAssertEqual(world.started.count, reducer.buckets.count)
            XCTAssertEqual(Set(world.started.map(\.address)).count, WireStaging.defaultSlotCount, "slots are reused")
        }
        for i in 0..<total {
            XCTAssertEqual(gradients[i], original[i], accuracy: abs(original[i]) * 0x1p-10 + 0x1p-24, "element \(i)")
        }
    }

    /// The reduce-scatter's slots hold a bucket to send and this rank's part of it to receive.
    func testReduceScatterStagesTwoBucketsWithTheirShardParts() throws {
        let world = MirroredCommunicator(size: 4)
        _ = try ReductionFixture.gradients(seed: 22, scale: 2) { g in
            let original = Array(g)
            let scatter = try GradientReduceScatter(communicator: world, gradients: g, groupRanges: groupRanges,
                                                    bucketMegabytes: bucketMegabytes, wireType: .fp16)
            let largest = try XCTUnwrap(scatter.buckets.map(\.range.count).max())
            let received = try XCTUnwrap(scatter.buckets.map { scatter.shard.clamped(to: $0.range).count }.max())
            XCTAssertEqual(scatter.stagingBytes, WireStaging.defaultSlotCount * (largest + received) * 2)
            XCTAssertLessThan(scatter.stagingBytes, (total + scatter.shard.count) * 2)
            // The shard's mean lands in the shard's own elements of the gradient buffer (no second fp32 copy).
            XCTAssertEqual(scatter.shardGradients.baseAddress, g.baseAddress! + scatter.shard.lowerBound)
            for group in groupRanges.indices.reversed() { scatter.groupReady(group) }
            XCTAssertFalse(scatter.finish().nonFinite)
            for (i, j) in scatter.shard.enumerated() {
                XCTAssertEqual(scatter.shardGradients[i], original[j], accuracy: abs(original[j]) * 0x1p-9 + 0x1p-20, "element \(j)")
            }
        }
    }

    /// fp32 sends from the gradient buffer: the shard's mean needs a buffer of its own.
    func testFP32ShardGradientsHaveTheirOwnBuffer() throws {
        var gradients = [Float](repeating: 1, count: total)
        try gradients.withUnsafeMutableBufferPointer { g in
            let scatter = try GradientReduceScatter(communicator: MirroredCommunicator(size: 2), gradients: g, groupRanges: groupRanges,
                                                    bucketMegabytes: bucketMegabytes, wireType: .fp32)
            let shardStart = g.baseAddress! + scatter.shard.lowerBound
            XCTAssertNotEqual(scatter.shardGradients.baseAddress, shardStart)
            for group in groupRanges.indices.reversed() { scatter.groupReady(group) }
            XCTAssertFalse(scatter.finish().nonFinite)
            XCTAssertEqual(Array(scatter.shardGradients), Array(repeating: 1, count: scatter.shard.count))
        }
    }

    /// fp32 (in place) and one rank stage nothing.
    func testFP32AndOneRankStageNothing() throws {
        var gradients = [Float](repeating: 1, count: total)
        try gradients.withUnsafeMutableBufferPointer { g in
            XCTAssertEqual(try GradientReducer(communicator: MirroredCommunicator(size: 2), gradients: g, groupRanges: groupRanges,
                                               wireType: .fp32).stagingBytes, 0)
            XCTAssertEqual(try GradientReducer(communicator: SingleProcessCommunicator(), gradients: g, groupRanges: groupRanges,
                                               wireType: .fp16).stagingBytes, 0)
            XCTAssertEqual(try GradientReduceScatter(communicator: SingleProcessCommunicator(), gradients: g, groupRanges: groupRanges,
                                                     wireType: .fp16).stagingBytes, 0)
        }
    }
}
