import Foundation
import Llama
import XCTest

@testable import Training

/// Rows longer than a config's position limit (a Mistral sliding window here) are refused at
/// start with the key and the way out, before any step: not a trap inside the model.
final class PositionLimitTests: XCTestCase {
    func testARowLongerThanTheSlidingWindowIsRefusedNamingTheKeyAndMaxLength() throws {
        var config = TrainerSandbox.tinyConfig
        config.modelType = "mistral"
        config.slidingWindow = 8
        let sandbox = try TrainerSandbox(config: config)
        // "12+30=" + "42<eos>" is 9 tokens of the byte tokenizer: one past the window.
        let data = try sandbox.writePairs("long.jsonl", [("12+30=", "42", "41"), ("1+1=", "2", "3")])
        let p = sandbox.parameters(data: data)
        XCTAssertThrowsError(try sandbox.train(p)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("--data \(data.path)"), text)
            XCTAssertTrue(text.contains("sliding_window"), text)
            XCTAssertTrue(text.contains("9 tokens is longer than 8"), text)
            XCTAssertTrue(text.contains("--max-length"), text)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: sandbox.root.appendingPathComponent("out/final").path))

        // Within the window the same model trains.
        var short = sandbox.parameters(data: try sandbox.writePairs("short.jsonl", TrainerSandbox.arithmetic), out: "short")
        short.maxSteps = 1
        XCTAssertEqual(try sandbox.train(short).0.finalStep, 1)
    }
}
