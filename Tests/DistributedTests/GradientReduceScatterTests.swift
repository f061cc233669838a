@testable import Distributed
import TestSupport
import XCTest

/// ZeRO-1's reduction on pretend worlds (`MirroredCommunicator`: every rank holds this rank's
/// values; it has no native reduce-scatter, so the `Communicator` fallbacks run) and on one
/// process. The 2-rank MPI versions are checked by `dpo mpi-check` (MPIJobTests).
final class GradientReduceScatterTests: XCTestCase {
    let groupRanges = [0..<300, 300..<1_300, 1_300..<2_300, 2_300..<3_300, 3_300..<3_557]
    let total = 3_557
    /// 1200 fp32 elements per bucket.
    let bucketMegabytes = 4_800.0 / 1_048_576

    func testShardsTileTheVectorInRankOrderWithSizesWithinOne() {
        for (total, ranks) in [(10, 3), (3_557, 4), (2, 5), (0, 2), (7, 1)] {
            let shards = ParameterShards.ranges(total: total, ranks: ranks)
            XCTAssertEqual(shards.count, ranks)
            XCTAssertEqual(shards.first?.lowerBound, 0)
            XCTAssertEqual(shards.last?.upperBound, total)
            XCTAssertTrue(zip(shards, shards.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound }, "\(shards)")
            let sizes = shards.map(\.count)
            XCTAssertLessThanOrEqual(sizes.max()! - sizes.min()!, 1, "\(sizes)")
        }
        XCTAssertEqual(ParameterShards.ranges(total: 10, ranks: 3), [0..<4, 4..<7, 7..<10])
    }

    /// Rank 0 of 4 receives its shard of the mean, identical to the same elements of
    /// `GradientReducer`'s all-reduced buffer; buckets start during backward.
    func testShardOfTheMeanEqualsTheAllReducedMeanFP32AndFP16() throws {
        for wireType in GradientReducer.WireType.allCases {
            let world = MirroredCommunicator(size: 4)
            var random = TestRandom(seed: 11)
            let original = random.array(total, scale: 2)
            var full = original, local = original
            try full.withUnsafeMutableBufferPointer { g in
                let reducer = try GradientReducer(communicator: world, gradients: g, groupRanges: groupRanges,
                                                  bucketMegabytes: bucketMegabytes, wireType: wireType)
                for group in groupRanges.indices.reversed() { reducer.groupReady(group) }
                XCTAssertFalse(reducer.finish().nonFinite)
            }
            try local.withUnsafeMutableBufferPointer { g in
                let scatter = try GradientReduceScatter(communicator: world, gradients: g, groupRanges: groupRanges,
                                                        bucketMegabytes: bucketMegabytes, wireType: wireType)
                XCTAssertEqual(scatter.shard, 0..<890)
                for group in groupRanges.indices.reversed() { scatter.groupReady(group) }
                let reduction = scatter.finish()
                XCTAssertFalse(reduction.nonFinite)
                XCTAssertEqual(reduction.bucketsStartedEarly, scatter.buckets.count)
                XCTAssertEqual(Array(scatter.shardGradients), Array(full[scatter.shard]), "\(wireType)")
            }
            // Not vacuous: the mean over 4 mirrored ranks is the input (to the wire's rounding).
            for i in 0..<890 { XCTAssertEqual(full[i], original[i], accuracy: abs(original[i]) * 0x1p-9 + 0x1p-20) }
        }
    }

    func testNaNOnThisRankIsReportedAndStepsRepeat() throws {
        let world = MirroredCommunicator(size: 2)
        var gradients = [Float](repeating: 0.5, count: total)
        gradients[3_000] = .nan  // outside rank 0's shard: the local check still sees it
        try gradients.withUnsafeMutableBufferPointer { g in
            let scatter = try GradientReduceScatter(communicator: world, gradients: g, groupRanges: groupRanges,
                                                    bucketMegabytes: bucketMegabytes, wireType: .fp32)
            XCTAssertTrue(scatter.finish().nonFinite)
            for i in g.indices { g[i] = 0.5 }
            XCTAssertFalse(scatter.finish().nonFinite, "the flag is reset for the next step")
            XCTAssertTrue(scatter.shardGradients.allSatisfy { $0 == 0.5 })
        }
    }

    func testOneProcessShardIsTheWholeBufferAndGatherIsTheIdentity() throws {
        let world = SingleProcessCommunicator()
        var random = TestRandom(seed: 3)
        let original = random.array(total)
        var gradients = original
        try gradients.withUnsafeMutableBufferPointer { g in
            let scatter = try GradientReduceScatter(communicator: world, gradients: g, groupRanges: groupRanges,
                                                    bucketMegabytes: bucketMegabytes, wireType: .fp16)
            XCTAssertEqual(scatter.shard, 0..<total)
            for group in groupRanges.indices.reversed() { scatter.groupReady(group) }
            XCTAssertFalse(scatter.finish().nonFinite)
            XCTAssertEqual(Array(scatter.shardGradients), original, "one rank: no wire, no rounding")
        }
        var weights = original
        weights.withUnsafeMutableBufferPointer { world.allGatherInPlace($0, counts: [total]) }
        XCTAssertEqual(weights, original)
    }
}
