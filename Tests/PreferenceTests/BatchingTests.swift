import XCTest
@testable import Preference

/// Rows in the model's convention, and sharding across ranks.
final class BatchingTests: XCTestCase {
    func testPairBatchRowsChosenFirstPaddedToLongest() {
        let pairs = [
            EncodedPair(index: 0, prompt: [1, 2], chosen: [3, 9], rejected: [4, 5, 9], promptTruncated: false,
                        chosenTruncated: false, rejectedTruncated: false),
            EncodedPair(index: 1, prompt: [6], chosen: [7, 9], rejected: [8, 9], promptTruncated: false,
                        chosenTruncated: false, rejectedTruncated: false),
        ]
        let rows = EncodedRows(pairs: pairs, paddingId: 0)
        XCTAssertEqual(rows.rows, 4)
        XCTAssertEqual(rows.seqLen, 4)  // longest row: 1 2 4 5 9 -> 4 inputs
        XCTAssertEqual(rows.lengths, [3, 2, 4, 2])
        XCTAssertEqual(rows.inputIds, [1, 2, 3, 0,  6, 7, 0, 0,  1, 2, 4, 5,  6, 8, 0, 0])
        XCTAssertEqual(rows.targetIds, [-1, 3, 9, -1,  7, 9, -1, -1,  -1, 4, 5, 9,  8, 9, -1, -1])
        XCTAssertEqual(rows.completionTokenCounts, [2, 2, 3, 2])
        XCTAssertEqual(rows.tokenCount, 11)
    }

    func testSequenceBatchUsesTheGeneralMask() {
        let sequence = EncodedSequence(tokens: [1, 2, 3, 4, 5], completionMask: [false, true, false, true, true])
        let rows = EncodedRows(sequences: [sequence, EncodedSequence(prompt: [7], completion: [8])], paddingId: 99)
        XCTAssertEqual(rows.inputIds, [1, 2, 3, 4, 7, 99, 99, 99])
        XCTAssertEqual(rows.targetIds, [2, -1, 4, 5, 8, -1, -1, -1])
        XCTAssertEqual(rows.completionTokenCounts, [3, 1])
        XCTAssertEqual(sequence.scoredTokenCount, 3)
    }

    func testEveryExampleSeenOncePerEpochAndEqualStepsFor1To5Ranks() throws {
        for count in [1, 2, 7, 10, 13, 29] {
            for worldSize in 1...5 {
                for batchSize in [1, 2, 3] {
                    let plans = try (0..<worldSize).map {
                        try BatchPlan(exampleCount: count, batchSize: batchSize, worldSize: worldSize, rank: $0, seed: 3)
                    }
                    for epoch in 0..<2 {
                        let perRank = plans.map { $0.batches(epoch: epoch) }
                        XCTAssertEqual(Set(perRank.map(\.count)).count, 1, "equal steps, \(count) examples, \(worldSize) ranks")
                        XCTAssertEqual(perRank[0].count, plans[0].stepsPerEpoch)
                        let seen = perRank.flatMap { $0.flatMap { $0 } }
                        XCTAssertEqual(Set(seen), Set(0..<count), "every example seen, \(count) examples, \(worldSize) ranks")
                        let padded = plans[0].examplesPerRank * worldSize
                        XCTAssertEqual(seen.count, padded)
                        // Padding repeats from the start of the permutation, like DistributedSampler.
                        var random = SeededRandom(seed: UInt64(3 + epoch))
                        var order = random.permutation(count)
                        var position = 0
                        while order.count < padded { order.append(order[position % count]); position += 1 }
                        for rank in 0..<worldSize {
                            XCTAssertEqual(plans[rank].indices(epoch: epoch), stride(from: rank, to: padded, by: worldSize).map { order[$0] })
                        }
                    }
                }
            }
        }
    }

    func testEpochsShuffleDifferentlyAndSeedIsReproducible() throws {
        let plan = try BatchPlan(exampleCount: 50, batchSize: 4, seed: 7)
        XCTAssertNotEqual(plan.indices(epoch: 0), plan.indices(epoch: 1))
        XCTAssertEqual(plan.indices(epoch: 1), try BatchPlan(exampleCount: 50, batchSize: 4, seed: 7).indices(epoch: 1))
        XCTAssertEqual(try BatchPlan(exampleCount: 5, batchSize: 2, shuffle: false).batches(epoch: 0), [[0, 1], [2, 3], [4]])
    }

    func testDropLastAndErrors() throws {
        let plan = try BatchPlan(exampleCount: 10, batchSize: 4, worldSize: 2, rank: 1, shuffle: false, dropLast: true)
        XCTAssertEqual(plan.batches(epoch: 0), [[1, 3, 5, 7]])
        XCTAssertThrowsError(try BatchPlan(exampleCount: 0, batchSize: 1))
        XCTAssertThrowsError(try BatchPlan(exampleCount: 3, batchSize: 4, dropLast: true))
        XCTAssertThrowsError(try BatchPlan(exampleCount: 3, batchSize: 1, worldSize: 2, rank: 2))
    }

    func testGroupByLengthKeepsEachRanksExamplesAndSortsWithinWindows() throws {
        let lengths = (0..<40).map { ($0 * 37) % 23 }
        for rank in 0..<3 {
            let plain = try BatchPlan(exampleCount: 40, batchSize: 2, worldSize: 3, rank: rank, seed: 1)
            let grouped = try BatchPlan(exampleCount: 40, batchSize: 2, worldSize: 3, rank: rank, seed: 1,
                                        groupByLength: lengths, groupWindowBatches: 3)
            let batches = grouped.batches(epoch: 0)
            XCTAssertEqual(batches.count, plain.stepsPerEpoch)
            XCTAssertEqual(batches.flatMap { $0 }.sorted(), plain.indices(epoch: 0).sorted())
            let firstWindow = batches.prefix(3).flatMap { $0 }.map { lengths[$0] }
            XCTAssertEqual(firstWindow, firstWindow.sorted(by: >))
        }
    }
}
