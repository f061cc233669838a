import Foundation
import XCTest
@testable import Training

/// Collects what the reporter writes; a class so the test sees writes made through the copy
/// the reporter holds.
final class CapturedOutput: TextOutputStream {
    var text = ""
    func write(_ string: String) { text += string }
}

/// A TextOutputStream value forwarding into a shared `CapturedOutput`.
struct CapturingStream: TextOutputStream {
    let target: CapturedOutput
    mutating func write(_ string: String) { target.write(string) }
}

final class ProgressReporterTests: XCTestCase {
    func snapshot(step: Int, elapsed: Double, startStep: Int = 0) -> ProgressSnapshot {
        ProgressSnapshot(step: step, totalSteps: 200, epoch: Double(step) / 100, loss: 0.65123, rewardAccuracy: 0.625,
                         rewardMargin: 0.03104, tokensPerSecond: 1234.4, elapsedSeconds: elapsed, startStep: startStep)
    }

    // MARK: - ETA

    func testETAUsesThisRunsAverageStepTime() {
        // 50 steps in 100 s -> 2 s/step; 150 steps left -> 300 s.
        XCTAssertEqual(ProgressReporter.etaSeconds(snapshot(step: 50, elapsed: 100)), 300)
        // Resumed at step 40: 10 steps in 100 s -> 10 s/step; 150 left -> 1500 s.
        XCTAssertEqual(ProgressReporter.etaSeconds(snapshot(step: 50, elapsed: 100, startStep: 40)), 1500)
        XCTAssertNil(ProgressReporter.etaSeconds(snapshot(step: 40, elapsed: 1, startStep: 40)), "no step done yet")
        XCTAssertEqual(ProgressReporter.etaSeconds(snapshot(step: 200, elapsed: 10)), 0)
        // A resumed run's plain line shows the ETA from this run's speed.
        XCTAssertTrue(ProgressReporter.plainLine(snapshot(step: 50, elapsed: 100, startStep: 40)).hasSuffix("eta 25:00"))
    }

    func testDurationFormatting() {
        XCTAssertEqual(ProgressReporter.duration(0), "00:00")
        XCTAssertEqual(ProgressReporter.duration(65.4), "01:05")
        XCTAssertEqual(ProgressReporter.duration(3600 + 2 * 60 + 3), "1:02:03")
        XCTAssertEqual(ProgressReporter.duration(.nan), "?")
    }

    // MARK: - Terminal mode

    func testInteractiveModeRedrawsOneLineInPlace() {
        let captured = CapturedOutput()
        let reporter = ProgressReporter(output: CapturingStream(target: captured), mode: .interactive, width: 120)
        reporter.update(snapshot(step: 50, elapsed: 100))
        reporter.update(snapshot(step: 100, elapsed: 200))
        XCTAssertFalse(captured.text.contains("\n"), "a terminal bar is redrawn, not scrolled")
        let draws = captured.text.split(separator: "\r", omittingEmptySubsequences: true)
        XCTAssertEqual(draws.count, 2)
        XCTAssertTrue(draws[1].hasSuffix("\u{1B}[K"), "each draw clears the rest of the line")
        let line = String(draws[1].dropLast(3))
        XCTAssertTrue(line.hasPrefix("100/200 ["), line)
        XCTAssertTrue(line.contains("]  50% "), line)
        for field in ["epoch 1.00", "loss 0.6512", "acc 0.625", "margin 0.0310", "1234 tok/s", "03:20<03:20"] {
            XCTAssertTrue(line.contains(field), "\(field) missing from \(line)")
        }
        XCTAssertLessThan(line.count, 120)
        // The bar is half filled.
        let bar = line[line.index(after: line.firstIndex(of: "[")!)..<line.firstIndex(of: "]")!]
        XCTAssertEqual(bar.filter { $0 == "#" }.count * 2, bar.count)

        reporter.message("eval_loss 0.41")
        XCTAssertTrue(captured.text.hasSuffix("\r\u{1B}[Keval_loss 0.41\n" + line + "\u{1B}[K"), "message above, bar redrawn")
        reporter.finish()
        XCTAssertTrue(captured.text.hasSuffix("\n"))
    }

    func testBarFitsNarrowTerminals() {
        let line = ProgressReporter.barLine(snapshot(step: 3, elapsed: 9), width: 60)
        XCTAssertTrue(line.hasPrefix("  3/200 [..........]   1% "), line)
        XCTAssertEqual(line.count, 59, "cut to leave the last column free")
        let roomy = ProgressReporter.barLine(snapshot(step: 3, elapsed: 9), width: 200)
        XCTAssertTrue(roomy.contains("[" + String(repeating: ".", count: 30) + "]"), "bar is at most 30 wide")
        XCTAssertTrue(roomy.hasSuffix("00:09<09:51"), roomy)
    }

    // MARK: - Plain mode

    func testPlainModeWritesOneLinePerUpdate() {
        let captured = CapturedOutput()
        let reporter = ProgressReporter(output: CapturingStream(target: captured), mode: .plain)
        reporter.update(snapshot(step: 10, elapsed: 20))
        reporter.message("saved checkpoint-10")
        reporter.update(snapshot(step: 20, elapsed: 40))
        reporter.finish()
        XCTAssertFalse(captured.text.contains("\r"))
        XCTAssertFalse(captured.text.contains("\u{1B}"))
        XCTAssertEqual(captured.text.split(separator: "\n"), [
            "step 10/200 epoch 0.10 loss 0.6512 acc 0.625 margin 0.0310 tok/s 1234 elapsed 00:20 eta 06:20",
            "saved checkpoint-10",
            "step 20/200 epoch 0.20 loss 0.6512 acc 0.625 margin 0.0310 tok/s 1234 elapsed 00:40 eta 06:00",
        ])
    }

    func testPlainModeWritesEveryLogStepAndTheLastStep() {
        let captured = CapturedOutput()
        let reporter = ProgressReporter(output: CapturingStream(target: captured), mode: .plain, plainEvery: 10)
        for step in 1...25 {
            var update = snapshot(step: step, elapsed: Double(step))
            update.totalSteps = 25
            reporter.update(update)
        }
        XCTAssertEqual(captured.text.split(separator: "\n").map { $0.split(separator: " ")[1] }, ["10/25", "20/25", "25/25"])
    }

    func testNonFiniteValuesPrintReadably() {
        var diverged = snapshot(step: 1, elapsed: 1)
        diverged.loss = .nan
        diverged.rewardMargin = -.infinity
        let line = ProgressReporter.plainLine(diverged)
        XCTAssertTrue(line.contains("loss nan"), line)
        XCTAssertTrue(line.contains("margin -inf"), line)
    }

    func testModeDetectionOnAPipeIsPlain() {
        let pipe = Pipe()
        XCTAssertEqual(ProgressMode.detect(fileDescriptor: pipe.fileHandleForWriting.fileDescriptor), .plain)
        XCTAssertNil(ProgressMode.terminalColumns(fileDescriptor: pipe.fileHandleForWriting.fileDescriptor))
    }

    func testFileHandleOutputStreamWritesThrough() throws {
        let pipe = Pipe()
        var stream = FileHandleOutputStream(pipe.fileHandleForWriting)
        stream.write("step 1/2\n")
        try pipe.fileHandleForWriting.close()
        XCTAssertEqual(String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self), "step 1/2\n")
    }

    // MARK: - Start-up summary

    func testStartupSummaryListsEveryFact() {
        let facts = ProgressStartupSummary(
            modelDescription: "runs/sft (4 layers, hidden 256)", parameterCount: 25_800_000, worldSize: 2,
            threadsPerRank: 1, pairsPerRank: 4, gradientAccumulation: 2, precision: "fp16",
            lossDescription: "sigmoid, beta 0.1", trainPairs: 1_200, evalPairs: 64,
            droppedPairs: [(reason: "prompt longer than --max-prompt-length", count: 3),
                           (reason: "chosen equals rejected", count: 2), (reason: "empty completion", count: 0)],
            totalSteps: 150, epochs: 2,
            memory: .init(weightsBytes: 150 << 20, optimizerBytes: 300 << 20, activationsBytes: 1 << 30,
                          referenceBytes: 50 << 20))
        XCTAssertEqual(facts.globalBatch, 16)
        XCTAssertEqual(facts.memory.totalBytes, (500 << 20) + (1 << 30))
        let text = ProgressStartupSummary.format(facts)
        let expected: [(key: String, value: String)] = [
            ("model", "runs/sft (4 layers, hidden 256)"),
            ("parameters", "25.80M (25,800,000)"),
            ("world size", "2 ranks x 1 thread"),
            ("global batch", "16 pairs = 4 per rank x 2 accumulation x 2 ranks"),
            ("precision", "fp16"),
            ("loss", "sigmoid, beta 0.1"),
            ("train pairs", "1,200"),
            ("eval pairs", "64"),
            ("dropped pairs", "5"),
            ("  prompt longer than --max-prompt-length", "3"),
            ("  chosen equals rejected", "2"),
            // "empty completion" dropped no pair, so it is not listed.
            ("steps", "150 (2 epochs)"),
            ("peak memory/rank", "~1.49 GiB (estimate)"),
            ("  weights", "150.0 MiB"),
            ("  optimizer", "300.0 MiB"),
            ("  activations", "1.00 GiB"),
            ("  reference", "50.0 MiB"),
        ]
        // Values line up in one column after the longest key.
        let keyWidth = expected.map(\.key.count).max()!
        let expectedLines = expected.map { $0.key.padding(toLength: keyWidth, withPad: " ", startingAt: 0) + "  " + $0.value }
        XCTAssertEqual(text, expectedLines.joined(separator: "\n") + "\n")
    }

    func testByteAndCountFormatting() {
        XCTAssertEqual(ProgressStartupSummary.bytes(512), "512 B")
        XCTAssertEqual(ProgressStartupSummary.bytes(1536), "1.50 KiB")
        XCTAssertEqual(ProgressStartupSummary.bytes(20 << 20), "20.0 MiB")
        XCTAssertEqual(ProgressStartupSummary.humanCount(950), "950")
        XCTAssertEqual(ProgressStartupSummary.humanCount(1_500_000_000), "1.50B")
        XCTAssertEqual(ProgressStartupSummary.grouped(-1_234_567), "-1,234,567")
    }

    /// `--loss sft` has no rewards: its lines carry no accuracy or margin (before: "acc 0.000 margin 0.0000").
    func testLinesWithoutRewardsOmitAccuracyAndMargin() {
        let sft = ProgressSnapshot(step: 3, totalSteps: 10, epoch: 0.3, loss: 1.25, rewardAccuracy: .nan, rewardMargin: .nan,
                                   tokensPerSecond: 500, elapsedSeconds: 6, startStep: 0)
        for line in [ProgressReporter.plainLine(sft), ProgressReporter.barLine(sft, width: 120)] {
            XCTAssertTrue(line.contains("loss 1.2500"), line)
            XCTAssertFalse(line.contains("acc"), line)
            XCTAssertFalse(line.contains("margin"), line)
        }
    }
}
