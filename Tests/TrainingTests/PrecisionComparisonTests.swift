import Llama
import XCTest

@testable import DPOTools
@testable import Training

final class PrecisionComparisonTests: XCTestCase {
    /// Both precisions run on the same rows in ABBA order, train the same objective, and the
    /// summary figures are the rounds' own: totals' ratio, median, rounds fp16 won.
    func testRoundsAlternateAndSummariesComeFromThem() throws {
        var options = DPOStepBenchmark.Options(preset: .tiny)
        options.batchPairs = 2
        options.sequenceLength = 16
        options.timedSteps = 3
        var reported: [Int] = []
        let result = try PrecisionComparison.run(options) { index, _ in reported.append(index) }
        XCTAssertEqual(reported, [0, 1, 2])
        XCTAssertEqual(result.rounds.map(\.fp16First), [false, true, false])
        XCTAssertEqual(result.tokensPerStep, 2 * 2 * 16)
        for round in result.rounds {
            for timing in [round.fp32, round.fp16] {
                XCTAssertGreaterThan(timing.seconds, 0)
                XCTAssertGreaterThan(timing.cpuSeconds, 0)
            }
            // Same weights, same rows, learning rate 1e-6: the DPO loss stays near ln 2 in both.
            XCTAssertEqual(round.fp32.objective, log(2), accuracy: 1e-3)
            XCTAssertEqual(round.fp16.objective, round.fp32.objective, accuracy: 1e-3)
        }
        let fp16 = result.rounds.map(\.fp16.cpuSeconds).reduce(0, +), fp32 = result.rounds.map(\.fp32.cpuSeconds).reduce(0, +)
        XCTAssertEqual(result.totalCPURatio, fp16 / fp32, accuracy: 1e-12)
        let ratios = result.rounds.map { $0.fp16.cpuSeconds / $0.fp32.cpuSeconds }
        XCTAssertEqual(result.medianCPURatio, ratios.sorted()[1], accuracy: 1e-12)
        XCTAssertEqual(result.fp16FasterRounds, ratios.filter { $0 < 1 }.count)
        let plain = try DPOStepBenchmark.run(options)
        XCTAssertEqual(result.plainStepFLOPs, plain.plainStepFLOPs, accuracy: 1e-6 * plain.plainStepFLOPs)
    }

    func testRefusesWhatItDoesNotTime() {
        var options = DPOStepBenchmark.Options(preset: .tiny)
        options.sequenceLength = 16
        options.ioDirectory = FileManager.default.temporaryDirectory
        XCTAssertThrowsError(try PrecisionComparison.run(options))
        options.ioDirectory = nil
        options.timedSteps = 0
        XCTAssertThrowsError(try PrecisionComparison.run(options))
    }
}
