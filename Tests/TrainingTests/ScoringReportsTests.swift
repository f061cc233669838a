import Distributed
import Foundation
import XCTest

@testable import Training

/// `dpo logps` and `dpo eval` output.
final class ScoringReportsTests: XCTestCase {

    func testLogpsLinesInInputOrderWithDroppedPairs() throws {
        let sandbox = try TrainerSandbox()
        let data = try sandbox.writePairs("pairs.jsonl", [("2+2=", "4", "5"), (String(repeating: "p", count: 30), "yes", "no"), ("1+1=", "2", "11")])
        var options = ScoringReports.LogpsOptions(modelDirectory: sandbox.modelDirectory.path, dataFile: data.path)
        let full = try ScoringReports.logps(options)
        XCTAssertEqual(full.count, 3)
        let objects = try full.map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        XCTAssertEqual(objects.map { $0["index"] as? Int }, [0, 1, 2])
        // "4" + EOS: 2 completion tokens; "11" + EOS: 3.
        XCTAssertEqual(objects[0]["chosen_tokens"] as? Int, 2)
        XCTAssertEqual(objects[2]["rejected_tokens"] as? Int, 3)
        XCTAssertTrue(full[0].hasPrefix("{\"index\": 0, \"chosen_logps\": "), full[0])
        let sum = try XCTUnwrap(objects[2]["rejected_logps"] as? Double)
        XCTAssertLessThan(sum, 0)

        options.averageLogps = true
        let averaged = try ScoringReports.logps(options).map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        XCTAssertEqual(try XCTUnwrap(averaged[2]["rejected_logps"] as? Double), sum / 3, accuracy: 1e-5)

        // With truncation asked for, the long-prompt pair cannot keep a completion and is reported dropped.
        options.averageLogps = false
        options.maxLength = 8
        options.maxPromptLength = 30
        let truncated = try ScoringReports.logps(options)
        XCTAssertTrue(truncated[1].contains("\"dropped\""), truncated[1])
        XCTAssertEqual(truncated.count, 3)
    }

    func testEvalPrintsEvalPrefixedMetricsAndCounts() throws {
        let sandbox = try TrainerSandbox()
        let data = try sandbox.writePairs("pairs.jsonl", TrainerSandbox.arithmetic)
        var options = ScoringReports.EvalOptions(modelDirectory: sandbox.modelDirectory.path, dataFile: data.path)
        options.referenceModelDirectory = sandbox.modelDirectory.path
        let line = try ScoringReports.evaluate(options, communicator: SingleProcessCommunicator())
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        // The policy is its own reference: ln 2, zero rewards.
        XCTAssertEqual(try XCTUnwrap(object["eval_loss"] as? Double), log(2.0), accuracy: 1e-6)
        XCTAssertEqual(object["eval_rewards/margins"] as? Double, 0)
        XCTAssertEqual(object["eval_pairs"] as? Int, 4)
        XCTAssertEqual(object["eval_dropped"] as? Int, 0)
        for key in ["eval_rewards/chosen", "eval_rewards/accuracies", "eval_logps/chosen", "eval_logits/rejected"] {
            XCTAssertNotNil(object[key], key)
        }
        options.referenceModelDirectory = nil
        XCTAssertThrowsError(try ScoringReports.evaluate(options, communicator: SingleProcessCommunicator())) {
            XCTAssertTrue("\($0)".contains("--ref-model"), "\($0)")
        }
    }
}
