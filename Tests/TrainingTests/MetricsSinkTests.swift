import Foundation
import XCTest
@testable import Training

/// A fresh empty directory under the system temp dir, removed by the test's teardown block.
func makeMetricsTestDirectory(_ test: XCTestCase) throws -> URL {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("swift-dpo-tests-\(UUID().uuidString)", isDirectory: true)
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
    return url
}

/// Metrics of one step in the order the trainer logs them (TRL names).
func sampleTRLMetrics(step: Int) -> [(name: String, value: Double)] {
    let s = Double(step)
    return [
        ("loss", 0.6931 - 0.01 * s), ("rewards/chosen", 0.02 * s), ("rewards/rejected", -0.03 * s),
        ("rewards/accuracies", 0.5 + 0.05 * s), ("rewards/margins", 0.05 * s),
        ("logps/chosen", -40.5 + s), ("logps/rejected", -42.25 - s), ("grad_norm", 1.5),
        ("learning_rate", 5e-7), ("epoch", 0.125 * s),
    ]
}

final class MetricsSinkTests: XCTestCase {
    // MARK: - JSONL

    func testJSONLLineHasStepFirstThenMetricsInLoggedOrder() {
        let line = JSONLMetricsSink.line(step: 7, metrics: [("loss", 0.5), ("rewards/chosen", -0.25), ("epoch", 1)])
        XCTAssertEqual(line, "{\"step\": 7, \"loss\": 0.5, \"rewards/chosen\": -0.25, \"epoch\": 1}\n")
    }

    func testJSONLWritesNonFiniteAsNullAndReaderReturnsNaN() throws {
        let line = JSONLMetricsSink.line(step: 1, metrics: [("loss", .nan), ("grad_norm", .infinity), ("lr", 1e-5)])
        XCTAssertEqual(line, "{\"step\": 1, \"loss\": null, \"grad_norm\": null, \"lr\": 1e-05}\n")
        let parsed = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        XCTAssertNotNil(parsed, "line must be valid JSON")
        let log = try MetricsLog.parse(line, source: "inline")
        XCTAssertTrue(log.records[0]["loss"]!.isNaN)
        XCTAssertEqual(log.records[0]["lr"], 1e-5)
    }

    func testJSONLFileHasOneObjectPerLoggedStepAndReadsBack() throws {
        let directory = try makeMetricsTestDirectory(self)
        let url = directory.appendingPathComponent("run/metrics.jsonl")
        let sink = try JSONLMetricsSink(url: url)
        let steps = [1, 2, 4, 8]
        for step in steps { try sink.log(step: step, metrics: sampleTRLMetrics(step: step)) }
        try sink.log(step: 8, metrics: [("eval_loss", 0.4), ("eval_rewards/accuracies", 0.75)])
        try sink.close()

        let lines = try String(contentsOf: url, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 5)
        for (line, step) in zip(lines, steps) {
            // Each line is an independent JSON object with the step and every TRL name.
            let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            XCTAssertEqual(object["step"] as? Int, step)
            XCTAssertEqual(Set(object.keys), Set(["step"] + sampleTRLMetrics(step: step).map(\.name)))
            XCTAssertEqual(object["loss"] as? Double ?? .nan, 0.6931 - 0.01 * Double(step), accuracy: 1e-15)
        }

        let log = try MetricsLog.read(url)
        XCTAssertEqual(log.records.map(\.step), [1, 2, 4, 8, 8])
        XCTAssertEqual(log.names, sampleTRLMetrics(step: 0).map(\.name) + ["eval_loss", "eval_rewards/accuracies"])
        for (record, step) in zip(log.records, steps) {
            XCTAssertEqual(record.metrics.map(\.name), sampleTRLMetrics(step: step).map(\.name))
            XCTAssertEqual(record.metrics.map(\.value), sampleTRLMetrics(step: step).map(\.value), "values round-trip exactly")
        }
        let margins = log.series("rewards/margins")
        XCTAssertEqual(margins.steps, [1, 2, 4, 8])
        XCTAssertEqual(margins.values, [0.05, 0.1, 0.2, 0.4])
        XCTAssertEqual(log.series("eval_loss").steps, [8])
    }

    func testLogAfterCloseThrows() throws {
        let sink = try JSONLMetricsSink(url: try makeMetricsTestDirectory(self).appendingPathComponent("m.jsonl"))
        try sink.close()
        XCTAssertThrowsError(try sink.log(step: 1, metrics: [("loss", 1)]))
    }

    // MARK: - Reader errors

    func testReaderNamesFileLineAndKeyOnBadInput() {
        let cases: [(text: String, expected: String)] = [
            ("{\"step\": 1, \"loss\": 0.5}\n{\"loss\": 0.4}\n", "m.jsonl:2: missing key \"step\""),
            ("{\"step\": 1.5, \"loss\": 0.5}\n", "m.jsonl:1: key \"step\" must be an integer"),
            ("\n{\"step\": 1, \"loss\": abc}\n", "m.jsonl:2: key \"loss\" has value abc"),
            ("{\"step\": 1, \"loss\": [1]}\n", "m.jsonl:1: key \"loss\" holds a nested value"),
            ("{\"step\": 1, \"loss\": 0.5\n", "m.jsonl:1:"),
            ("[1, 2]\n", "m.jsonl:1: expected '{'"),
        ]
        for (text, expected) in cases {
            XCTAssertThrowsError(try MetricsLog.parse(text, source: "m.jsonl"), text) { error in
                XCTAssertTrue("\(error)".hasPrefix(expected), "\(error) should start with \(expected)")
            }
        }
    }

    func testReaderSkipsStringsAndBooleansAndAcceptsEscapes() throws {
        let log = try MetricsLog.parse("{\"step\": 3, \"name\": \"a\\\"b\\u00e9\", \"ok\": true, \"lo\\/ss\": 2}\n", source: "x")
        XCTAssertEqual(log.records[0].metrics.map(\.name), ["lo/ss"])
        XCTAssertEqual(log.records[0].metrics.map(\.value), [2])
    }

    func testMissingFileErrorNamesThePath() {
        XCTAssertThrowsError(try MetricsLog.read(URL(fileURLWithPath: "/nonexistent/metrics.jsonl"))) { error in
            XCTAssertTrue("\(error)".contains("/nonexistent/metrics.jsonl"))
        }
    }

    // MARK: - Fan-out

    final class RecordingSink: MetricsSink {
        var steps: [Int] = [], closed = false, failing = false
        func log(step: Int, metrics: [(name: String, value: Double)]) throws {
            steps.append(step)
            if failing { throw MetricsError("failing sink") }
        }
        func close() throws { closed = true }
    }

    func testFanOutForwardsToEverySinkEvenAfterAnError() throws {
        let failing = RecordingSink(), healthy = RecordingSink()
        failing.failing = true
        let fanOut = FanOutMetricsSink([failing, healthy])
        XCTAssertThrowsError(try fanOut.log(step: 3, metrics: [("loss", 1)]))
        XCTAssertEqual(failing.steps, [3])
        XCTAssertEqual(healthy.steps, [3])
        try fanOut.close()
        XCTAssertTrue(failing.closed && healthy.closed)
    }

    func testStandardSinksWriteMetricsJSONLAndTensorBoardUnderOutputDirectory() throws {
        let out = try makeMetricsTestDirectory(self)
        let sink = try FanOutMetricsSink.standard(outputDirectory: out)
        for step in 1...3 { try sink.log(step: step, metrics: sampleTRLMetrics(step: step)) }
        try sink.log(step: 3, metrics: [("eval_loss", .nan), ("eval_rewards/accuracies", 0.5)])
        try sink.close()
        XCTAssertEqual(try MetricsLog.read(out.appendingPathComponent("metrics.jsonl")).records.count, 4)
        let eventFiles = try FileManager.default.contentsOfDirectory(atPath: out.appendingPathComponent("tensorboard").path)
        XCTAssertEqual(eventFiles.count, 1)
        XCTAssertTrue(eventFiles[0].hasPrefix("events.out.tfevents."))

        // SWIFT_DPO_KEEP_RUN=DIR keeps OUT for `Fixtures/check_tensorboard_events.py DIR/tensorboard --metrics DIR/metrics.jsonl`.
        if let keep = ProcessInfo.processInfo.environment["SWIFT_DPO_KEEP_RUN"] {
            let target = URL(fileURLWithPath: keep)
            try? FileManager.default.removeItem(at: target)
            try FileManager.default.copyItem(at: out, to: target)
        }
    }
}

// MARK: - Resume

final class MetricsResumeTests: XCTestCase {
    func testResumedJSONLKeepsStepsUpToTheCheckpointAndAppends() throws {
        let url = try makeMetricsTestDirectory(self).appendingPathComponent("metrics.jsonl")
        let first = try JSONLMetricsSink(url: url)
        for step in 1...6 { try first.log(step: step, metrics: [("loss", Double(step))]) }
        try first.close()  // checkpoint was at step 4; steps 5 and 6 are lost with the crash

        let resumed = try JSONLMetricsSink(url: url, keepingStepsThrough: 4)
        try resumed.log(step: 5, metrics: [("loss", 50)])
        try resumed.close()
        let log = try MetricsLog.read(url)
        XCTAssertEqual(log.records.map(\.step), [1, 2, 3, 4, 5])
        XCTAssertEqual(log.series("loss").values, [1, 2, 3, 4, 50])

        // A fresh run (no resume step) starts an empty file.
        try JSONLMetricsSink(url: url).close()
        XCTAssertEqual(try MetricsLog.read(url).records.count, 0)
    }

    func testResumeFromACorruptFileNamesTheLine() throws {
        let url = try makeMetricsTestDirectory(self).appendingPathComponent("metrics.jsonl")
        try Data("{\"step\": 1, \"loss\": 1}\n{\"step\": 2, \"loss\": \n".utf8).write(to: url)
        XCTAssertThrowsError(try JSONLMetricsSink(url: url, keepingStepsThrough: 1)) { error in
            XCTAssertTrue("\(error)".contains("metrics.jsonl:2:"), "\(error)")
        }
    }

    func testSecondTensorBoardFileInTheSameSecondDoesNotOverwriteTheFirst() throws {
        let directory = try makeMetricsTestDirectory(self)
        let first = try TensorBoardSink(directory: directory, clock: { 1000 }, hostName: "h")
        try first.log(step: 1, metrics: [("loss", 1)])
        try first.close()
        let second = try TensorBoardSink(directory: directory, clock: { 1000 }, hostName: "h")
        try second.close()
        XCTAssertEqual(first.fileURL.lastPathComponent, "events.out.tfevents.1000.h")
        XCTAssertEqual(second.fileURL.lastPathComponent, "events.out.tfevents.1000.h.1")
        XCTAssertEqual(try EventFileReader.events(first.fileURL).count, 2)
    }
}
