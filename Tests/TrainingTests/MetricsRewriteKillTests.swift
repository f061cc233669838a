import Foundation
import XCTest

@testable import Training

/// A resumed run rewrites `metrics.jsonl` keeping the lines up to its checkpoint's step. Killed
/// while it does (SIGKILL, OOM, or Ctrl-C: start-up still ends at once there), the file must
/// hold every line it held: before, it was truncated and then written again, and a kill in
/// between left it empty or cut, the run's whole metrics history lost. Kills a process that
/// reopens a 20 000-line file in a loop at random moments, as CheckpointKillTests does saves.
final class MetricsRewriteKillTests: XCTestCase {
    static let childFileVariable = "DPO_TEST_METRICS_LOOP_FILE"
    static let lineCount = 20_000

    /// Child mode (when the variable is set): reopen the file for a resume in a loop until
    /// killed. Parent mode: one reopening, checked (so the test asserts something either way).
    func testMetricsRewriteLoopChild() throws {
        if let path = ProcessInfo.processInfo.environment[Self.childFileVariable] {
            let deadline = Date().addingTimeInterval(20)
            while Date() < deadline {
                try JSONLMetricsSink(url: URL(fileURLWithPath: path), keepingStepsThrough: Self.lineCount).close()
                FileManager.default.createFile(atPath: path + ".ready", contents: nil)
            }
            return
        }
        let file = try Self.writeLines()
        defer { try? FileManager.default.removeItem(at: file.deletingLastPathComponent()) }
        let sink = try JSONLMetricsSink(url: file, keepingStepsThrough: Self.lineCount / 2)
        try sink.log(step: Self.lineCount / 2 + 1, metrics: [("loss", 0.5)])
        try sink.close()
        XCTAssertEqual(try Self.steps(file), Array(1...(Self.lineCount / 2 + 1)))
    }

    func testKillingAResumedRunWhileItRewritesTheMetricsNeverLosesLines() throws {
        let file = try Self.writeLines()
        defer { try? FileManager.default.removeItem(at: file.deletingLastPathComponent()) }
        var random = SystemRandomNumberGenerator()
        // Before the fix a kill tore the file within these 80 trials in both runs tried (at trials 17 and 78):
        // the window (truncate, write) is short beside the parse, so this is a net, not a proof.
        for trial in 0..<80 {
            let child = Process()
            child.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
            child.arguments = ["TrainingTests.MetricsRewriteKillTests/testMetricsRewriteLoopChild"]
            child.environment = ProcessInfo.processInfo.environment.merging([Self.childFileVariable: file.path]) { _, new in new }
            child.standardOutput = FileHandle.nullDevice
            child.standardError = FileHandle.nullDevice
            try? FileManager.default.removeItem(atPath: file.path + ".ready")
            try child.run()
            let deadline = Date().addingTimeInterval(30)
            while !FileManager.default.fileExists(atPath: file.path + ".ready") && child.isRunning && Date() < deadline { usleep(2_000) }
            usleep(UInt32.random(in: 0...100_000, using: &random))
            kill(child.processIdentifier, SIGKILL)
            child.waitUntilExit()
            XCTAssertEqual(child.terminationReason, .uncaughtSignal, "trial \(trial): the child was killed, not finished")
            let bytes = (try? FileManager.default.attributesOfItem(atPath: file.path)[.size] as? Int) ?? -1
            guard (try? Self.steps(file)) == Array(1...Self.lineCount) else {
                return XCTFail("trial \(trial): lines lost, \(bytes) bytes left of \(Self.lineCount) lines")
            }
        }
    }

    /// A fresh directory holding metrics.jsonl with steps 1...lineCount.
    static func writeLines() throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("metrics-kill-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let file = directory.appendingPathComponent("metrics.jsonl")
        let text = (1...lineCount).map { JSONLMetricsSink.line(step: $0, metrics: [("loss", 0.6931471805599453), ("grad_norm", 1.25)]) }.joined()
        try Data(text.utf8).write(to: file)
        return file
    }

    /// The steps of the file's lines, in order.
    static func steps(_ file: URL) throws -> [Int] {
        let text = try String(contentsOf: file, encoding: .utf8)
        return try text.split(separator: "\n").map { try MetricsLog.parseRecord(Array($0.utf8)).step }
    }
}
