import Distributed
import Foundation
import Llama
import TestSupport
import XCTest

@testable import Training

/// Issue 16: with plain RoPE (no sliding window, no dynamic scaling) rows longer than
/// `max_position_embeddings` trained silently on positions the model never saw. `train`, `logps`
/// and `eval` now refuse them with one message naming the file, the key and `--max-length`, and
/// `generate` says when it stops at the limit.
final class PositionLimitPlainRoPETests: XCTestCase {
    private func sandbox(maxPositions: Int) throws -> TrainerSandbox {
        var config = TrainerSandbox.tinyConfig
        config.maxPositionEmbeddings = maxPositions
        return try TrainerSandbox(config: config)
    }

    func testTrainLogpsAndEvalRefuseRowsPastMaxPositionEmbeddingsAlike() throws {
        let sandbox = try sandbox(maxPositions: 8)
        // "12+30=" + "42<eos>" is 9 tokens of the byte tokenizer: one past the limit.
        let data = try sandbox.writePairs("long.jsonl", [("12+30=", "42", "41"), ("1+1=", "2", "3")])
        var messages: [String] = []
        XCTAssertThrowsError(try sandbox.train(sandbox.parameters(data: data))) { messages.append("\($0)") }
        XCTAssertFalse(FileManager.default.fileExists(atPath: sandbox.root.appendingPathComponent("out/final").path))
        XCTAssertThrowsError(try ScoringReports.logps(.init(modelDirectory: sandbox.modelDirectory.path, dataFile: data.path))) {
            messages.append("\($0)")
        }
        var eval = ScoringReports.EvalOptions(modelDirectory: sandbox.modelDirectory.path, dataFile: data.path)
        eval.referenceModelDirectory = sandbox.modelDirectory.path
        XCTAssertThrowsError(try ScoringReports.evaluate(eval, communicator: SingleProcessCommunicator())) { messages.append("\($0)") }
        XCTAssertEqual(messages.count, 3)
        for text in messages {
            XCTAssertTrue(text.contains("--data \(data.path)"), text)
            XCTAssertTrue(text.contains("max_position_embeddings"), text)
            XCTAssertTrue(text.contains("9 tokens is longer than 8"), text)
            XCTAssertTrue(text.contains("--max-length 8"), text)
        }
        XCTAssertEqual(Set(messages).count, 1, "train, logps and eval word the refusal differently: \(messages)")

        // Capped with --max-length the same data trains.
        var capped = sandbox.parameters(data: data, out: "capped")
        capped.maxLength = 8
        capped.maxSteps = 1
        XCTAssertEqual(try sandbox.train(capped).0.finalStep, 1)
    }

    /// `generate` ending because prompt + new tokens reached the limit says so (on stderr), and
    /// not when it ended at --max-new-tokens.
    func testGenerateSaysWhenItStopsAtThePositionLimit() throws {
        let sandbox = try sandbox(maxPositions: 8)
        let model = sandbox.modelDirectory.path
        let stopped = try MPIJob.dpo(ranks: 1, ["generate", "--model", model, "--prompt", "1+2=", "--max-new-tokens", "20"])
        XCTAssertEqual(stopped.status, 0, stopped.output)
        XCTAssertTrue(stopped.output.contains("stopped at the position limit: 4 prompt + 4 generated tokens = max_position_embeddings 8"),
                      stopped.output)
        let short = try MPIJob.dpo(ranks: 1, ["generate", "--model", model, "--prompt", "1+2=", "--max-new-tokens", "2"])
        XCTAssertEqual(short.status, 0, short.output)
        XCTAssertFalse(short.output.contains("position limit"), short.output)
    }
}
