import Foundation
import Llama
@testable import Preference
import XCTest

@testable import Training

/// The fit check sizes the batch the encoded data will run (its longest row, at most
/// `--max-length`; no more pairs than a rank has), not rows of `--max-length`.
final class FitCheckDataGeometryTests: XCTestCase {
    func pair(_ index: Int, prompt: Int, chosen: Int, rejected: Int) -> EncodedPair {
        EncodedPair(index: index, prompt: Array(repeating: 1, count: prompt), chosen: Array(repeating: 2, count: chosen),
                    rejected: Array(repeating: 3, count: rejected), promptTruncated: false, chosenTruncated: false, rejectedTruncated: false)
    }

    func testDataRowsAreTheLongestRowAndEachRanksShareOfPairs() {
        let pairs = [pair(0, prompt: 10, chosen: 20, rejected: 5), pair(1, prompt: 30, chosen: 40, rejected: 90), pair(2, prompt: 1, chosen: 1, rejected: 1)]
        let rows = FitCheck.DataRows(pairs, worldSize: 2)
        XCTAssertEqual(rows, FitCheck.DataRows(longestRow: 120, pairsPerRank: 2))
        var p = TrainingParameters()
        p.batchPairs = 4
        p.maxLength = 1024
        XCTAssertEqual(rows.batch(p).pairs, 2, "a rank never holds more pairs than its share")
        XCTAssertEqual(rows.batch(p).longestRow, 120)
        p.maxLength = 64
        p.batchPairs = 1
        XCTAssertEqual(rows.batch(p).pairs, 1)
        XCTAssertEqual(rows.batch(p).longestRow, 64, "--max-length truncates longer rows")
    }

    /// Short data on a long --max-length: the estimate (and so the verdict) is the data's, far below the max-length one.
    func testEstimateUsesTheDataGeometry() throws {
        let config = LlamaPreset.smollm2135m.config
        var p = TrainingParameters()
        p.batchPairs = 4
        p.maxLength = 2048
        let data = FitCheck.DataRows(longestRow: 200, pairsPerRank: 100)
        let fromData = FitCheck.geometry(p, config: config, data: data)
        XCTAssertEqual(fromData.longestRow, 200)
        XCTAssertEqual(fromData.batchPairs, 4)
        let fromMaxLength = FitCheck.geometry(p, config: config)
        XCTAssertEqual(fromMaxLength.longestRow, 2048)
        XCTAssertLessThan(fromData.estimate().activationsBytes * 5, fromMaxLength.estimate().activationsBytes)
        // The refusal says which geometry it assumed, and offers --max-length below the data's rows.
        var shorter = p
        shorter.maxLength = 150
        let budget = FitCheck.geometry(shorter, config: config, data: data).estimate().totalBytes
        let verdict = FitCheck.Verdict(estimate: fromData.estimate(), available: AvailableMemory(bytes: budget, source: "MemAvailable"),
                                       ranksOnHost: 1, data: data)
        XCTAssertFalse(verdict.fits)
        let text = FitCheck.refusal(verdict, p, config: config, worldSize: 1)
        XCTAssertTrue(text.contains("4 pair(s) of rows of 200 tokens (the longest batch of the encoded data; --max-length 2048)"), text)
        let remedies = try XCTUnwrap(text.components(separatedBy: "Any of these would fit:").last)
        let range = try XCTUnwrap(remedies.range(of: "--max-length "), text)
        let offered = try XCTUnwrap(Int(remedies[range.upperBound...].prefix { $0.isNumber }), text)
        XCTAssertEqual(offered, 150, text)
    }

    /// A `--zero 1` run that does not fit: `--zero 1` is not offered again, and `--lora-r`'s
    /// figure is that of the unsharded run less what LoRA drops (it was negative: the sharded
    /// total minus the whole master weights and state).
    func testRemediesOfAZeroOneRunArePositiveAndDoNotOfferZeroOne() throws {
        let config = LlamaPreset.smollm2135m.config
        var p = TrainingParameters()
        p.batchPairs = 2
        p.maxLength = 256
        p.zero = 1
        p.precision = .fp16
        let data = FitCheck.DataRows(longestRow: 256, pairsPerRank: 10)
        let estimate = FitCheck.geometry(p, config: config, ranksOnHost: 2, worldSize: 2, data: data).estimate()
        let verdict = FitCheck.Verdict(estimate: estimate, available: AvailableMemory(bytes: estimate.totalBytes, source: "MemAvailable"),
                                       ranksOnHost: 2, data: data)
        XCTAssertFalse(verdict.fits)
        let text = FitCheck.refusal(verdict, p, config: config, worldSize: 2)
        XCTAssertTrue(text.contains("--lora-r 16 (~"), text)
        XCTAssertFalse(text.contains("(~-"), text)
        XCTAssertFalse(text.contains("--zero 1 ("), text)
    }

    /// A `--zero 1` run on 2 ranks with room for `--zero 2` but not for itself: the refusal
    /// offers `--zero 2` with its own estimate, which is the gradient shard smaller.
    func testZeroTwoIsOfferedWhenZeroOneDoesNotFit() throws {
        let config = LlamaPreset.smollm2135m.config
        var p = TrainingParameters()
        p.batchPairs = 4
        p.maxLength = 256
        p.zero = 1
        p.precision = .fp16
        p.gradientCheckpointing = true  // so that checkpointing is not the remedy
        let data = FitCheck.DataRows(longestRow: 256, pairsPerRank: 10)
        let one = FitCheck.geometry(p, config: config, ranksOnHost: 2, worldSize: 2, data: data).estimate()
        var q = p
        q.zero = 2
        let two = FitCheck.geometry(q, config: config, ranksOnHost: 2, worldSize: 2, data: data).estimate()
        XCTAssertLessThan(two.totalBytes, one.totalBytes - (100 << 20), "the gradient shard saves more than 100 MiB")
        let budget = (one.totalBytes + two.totalBytes) / 2
        let verdict = FitCheck.Verdict(estimate: one, available: AvailableMemory(bytes: 2 * budget, source: "MemAvailable"),
                                       ranksOnHost: 2, data: data)
        XCTAssertFalse(verdict.fits)
        let text = FitCheck.refusal(verdict, p, config: config, worldSize: 2)
        XCTAssertTrue(text.contains("--zero 2 (~\(ProgressStartupSummary.bytes(two.totalBytes)))"), text)
    }

    /// `--zero 2`'s window holds a bucket or a group at a time, and an LM head, tied or untied,
    /// goes a bucket at a time: untying the head adds its [V, H] to the shard (the parameters
    /// grow) but nothing to the window, which is the largest decoder layer's group here.
    func testZeroTwoWindowDoesNotHoldAnUntiedHeadWhole() {
        var tied = LlamaPreset.smollm2135m.config
        tied.tieWordEmbeddings = true
        var untied = tied
        untied.tieWordEmbeddings = false
        var p = TrainingParameters()
        p.zero = 2
        p.precision = .fp16
        let tokens = 512, world = 2
        func window(_ config: LlamaConfig) -> Int {
            let trained = ParameterLayout(config: config).totalCount
            return FitCheck.partitionedGradientCount(p, config: config, trained: trained, worldSize: world, tokens: tokens)
                - (trained + world - 1) / world
        }
        let layerGroup = ParameterLayout(config: tied).groupRanges[1].count
        let bucket = Int(p.resolvedBucketMegabytes * 1024 * 1024) / 2
        let embeddingRows = tokens * tied.hiddenSize
        XCTAssertEqual(window(tied), max(bucket, layerGroup) + embeddingRows)
        XCTAssertEqual(window(untied), window(tied), "the untied head is not held whole")
        XCTAssertLessThan(window(untied), tied.vocabSize * tied.hiddenSize, "less than the head itself")
    }
}
