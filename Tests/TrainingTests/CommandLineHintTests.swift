import Foundation
import TestSupport
import XCTest

@testable import Training

/// Issue 16: an error's hint must fit the command line it answers. No "pass --skip-invalid" when
/// it was given; with `--chat-template none` the cause is the flag, not a model without a template;
/// a user turn in chosen/rejected is named by file, line and key. Run on the real `dpo` binary.
final class CommandLineHintTests: XCTestCase {
    private let skipHint = "pass --skip-invalid"

    /// A conversational file: line 1 a good pair, line 2 `chosenLine` (a JSON object).
    private func conversationalData(_ job: TrainingJobSandbox, _ name: String, line2: String) throws -> String {
        let good = #"{"prompt": [{"role": "user", "content": "2+2="}], "chosen": [{"role": "assistant", "content": "4"}], "rejected": [{"role": "assistant", "content": "5"}]}"#
        let url = job.root.appendingPathComponent(name)
        try (good + "\n" + line2 + "\n" + good.replacingOccurrences(of: "2+2", with: "3+1") + "\n").write(to: url, atomically: true, encoding: .utf8)
        return url.path
    }

    // MARK: - --skip-invalid

    /// Every record invalid with --skip-invalid given: the error says nothing was left, and does
    /// not suggest the flag the user already passed. Without the flag the hint stays.
    func testSkipInvalidIsNotSuggestedWhenItWasGiven() throws {
        let job = try TrainingJobSandbox()
        let bad = job.root.appendingPathComponent("bad.jsonl")
        try "not json\n{\"x\": 1}\n".write(to: bad, atomically: true, encoding: .utf8)
        let model = job.sandbox.modelDirectory.path
        let train = ["train", "--model", model, "--data", bad.path, "--out", job.out("o").path, "--max-steps", "1"]
        let skipping = try MPIJob.dpo(ranks: 1, train + ["--skip-invalid"])
        XCTAssertEqual(skipping.status, 1, skipping.output)
        XCTAssertTrue(skipping.output.contains("no valid records"), skipping.output)
        XCTAssertTrue(skipping.output.contains("\(bad.path):1"), skipping.output)
        XCTAssertFalse(skipping.output.contains(skipHint), skipping.output)
        let plain = try MPIJob.dpo(ranks: 1, train)
        XCTAssertEqual(plain.status, 1, plain.output)
        XCTAssertTrue(plain.output.contains("\(bad.path):1: malformed JSON"), plain.output)
        XCTAssertTrue(plain.output.contains(skipHint), plain.output)

        // One bad line among good ones, skipped: the start-up line that reports it has no hint either.
        let mixed = job.root.appendingPathComponent("mixed.jsonl")
        try (try String(contentsOf: job.data, encoding: .utf8) + "not json\n").write(to: mixed, atomically: true, encoding: .utf8)
        let run = try MPIJob.dpo(ranks: 1, ["train", "--model", model, "--data", mixed.path, "--out", job.out("m").path,
                                            "--max-steps", "1", "--skip-invalid"])
        XCTAssertEqual(run.status, 0, run.output)
        XCTAssertTrue(run.output.contains("1 invalid records skipped"), run.output)
        XCTAssertFalse(run.output.contains(skipHint), run.output)
        let inspect = try MPIJob.dpo(ranks: 1, ["inspect-data", "--model", model, "--data", bad.path, "--skip-invalid"])
        XCTAssertEqual(inspect.status, 1, inspect.output)
        XCTAssertFalse(inspect.output.contains(skipHint), inspect.output)
    }

    /// `dpo logps` has no --skip-invalid (it prints one line per record), so its errors do not
    /// offer it; `dpo eval` takes it as `dpo train` does and counts what it skipped.
    func testOnlyCommandsWithSkipInvalidOfferIt() throws {
        let job = try TrainingJobSandbox()
        let mixed = job.root.appendingPathComponent("mixed.jsonl")
        try (try String(contentsOf: job.data, encoding: .utf8) + "not json\n").write(to: mixed, atomically: true, encoding: .utf8)
        let model = job.sandbox.modelDirectory.path
        let logps = try MPIJob.dpo(ranks: 1, ["logps", "--model", model, "--data", mixed.path])
        XCTAssertEqual(logps.status, 1, logps.output)
        XCTAssertTrue(logps.output.contains("\(mixed.path):9: malformed JSON"), logps.output)
        XCTAssertFalse(logps.output.contains(skipHint), logps.output)
        let eval = ["eval", "--model", model, "--ref-model", model, "--data", mixed.path]
        let refused = try MPIJob.dpo(ranks: 1, eval)
        XCTAssertEqual(refused.status, 1, refused.output)
        XCTAssertTrue(refused.output.contains(skipHint), refused.output)
        let skipping = try MPIJob.dpo(ranks: 1, eval + ["--skip-invalid"])
        XCTAssertEqual(skipping.status, 0, skipping.output)
        XCTAssertTrue(skipping.output.contains(#""eval_pairs": 8, "eval_dropped": 0, "eval_skipped": 1"#), skipping.output)
    }

    /// A file of the other kind (supervised messages where pairs are expected) is wrong as a
    /// whole: skipping its lines would leave nothing, so the flag is not offered.
    func testAFileOfTheWrongKindDoesNotOfferSkipping() throws {
        let job = try TrainingJobSandbox()
        let sft = job.root.appendingPathComponent("sft.jsonl")
        try (#"{"messages": [{"role": "user", "content": "1+1="}, {"role": "assistant", "content": "2"}]}"# + "\n")
            .write(to: sft, atomically: true, encoding: .utf8)
        let outcome = try MPIJob.dpo(ranks: 1, ["train", "--model", job.sandbox.modelDirectory.path, "--data", sft.path,
                                                "--out", job.out("o").path, "--max-steps", "1"])
        XCTAssertEqual(outcome.status, 1, outcome.output)
        XCTAssertTrue(outcome.output.contains("\(sft.path):1: holds supervised data (messages) where preference pairs were expected"),
                      outcome.output)
        XCTAssertFalse(outcome.output.contains(skipHint), outcome.output)
    }

    // MARK: - --chat-template none

    /// Conversational data with `--chat-template none` on a model that has a template: train,
    /// logps and inspect-data say the flag turned templates off (file and line named), never
    /// that the model has none.
    func testChatTemplateNoneOnConversationalDataBlamesTheFlag() throws {
        let job = try TrainingJobSandbox()
        let data = try conversationalData(job, "conv.jsonl", line2: #"{"prompt": [{"role": "user", "content": "1+1="}], "chosen": [{"role": "assistant", "content": "2"}], "rejected": [{"role": "assistant", "content": "3"}]}"#)
        let model = job.sandbox.modelDirectory.path
        let commands: [[String]] = [
            ["train", "--model", model, "--data", data, "--out", job.out("o").path, "--max-steps", "1"],
            ["logps", "--model", model, "--data", data],
            ["inspect-data", "--model", model, "--data", data],
        ]
        for command in commands {
            let outcome = try MPIJob.dpo(ranks: 1, command + ["--chat-template", "none"])
            XCTAssertEqual(outcome.status, 1, outcome.output)
            XCTAssertTrue(outcome.output.contains("\(data):1"), "\(command[0]): \(outcome.output)")
            XCTAssertTrue(outcome.output.contains("conversational"), "\(command[0]): \(outcome.output)")
            XCTAssertTrue(outcome.output.contains("--chat-template none"), "\(command[0]): \(outcome.output)")
            XCTAssertFalse(outcome.output.contains("the model has none"), "\(command[0]): \(outcome.output)")
            XCTAssertFalse(outcome.output.contains(skipHint), "\(command[0]): \(outcome.output)")
        }
        // Standard data with --chat-template none: the summary names the flag, not a missing template.
        let inspect = try MPIJob.dpo(ranks: 1, ["inspect-data", "--model", model, "--data", job.data.path, "--chat-template", "none"])
        XCTAssertEqual(inspect.status, 0, inspect.output)
        XCTAssertTrue(inspect.output.contains("chat template: none (--chat-template none)"), inspect.output)

        // A model without a template (auto): that is the cause, and the message says so with the line.
        let bare = job.root.appendingPathComponent("bare")
        try FileManager.default.copyItem(at: job.sandbox.modelDirectory, to: bare)
        let configURL = bare.appendingPathComponent("tokenizer_config.json")
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: configURL)) as! [String: Any]
        config.removeValue(forKey: "chat_template")
        try JSONSerialization.data(withJSONObject: config).write(to: configURL)
        let noTemplate = try MPIJob.dpo(ranks: 1, ["logps", "--model", bare.path, "--data", data])
        XCTAssertEqual(noTemplate.status, 1, noTemplate.output)
        XCTAssertTrue(noTemplate.output.contains("\(data):1"), noTemplate.output)
        XCTAssertTrue(noTemplate.output.contains("the model has none"), noTemplate.output)
        XCTAssertFalse(noTemplate.output.contains(skipHint), noTemplate.output)
    }

    // MARK: - Completions that are not the assistant's

    /// A chosen list ending (or starting) with a user turn: refused naming the file, the line and
    /// the key, saying the first and last turns must be the assistant's; --skip-invalid skips it.
    func testAUserTurnInChosenIsRefusedNamingTheFileLineAndKey() throws {
        let job = try TrainingJobSandbox()
        let model = job.sandbox.modelDirectory.path
        let endsWithUser = try conversationalData(job, "ends.jsonl", line2: #"{"prompt": [{"role": "user", "content": "1+1="}], "chosen": [{"role": "assistant", "content": "2"}, {"role": "user", "content": "thanks"}], "rejected": [{"role": "assistant", "content": "3"}]}"#)
        let startsWithUser = try conversationalData(job, "starts.jsonl", line2: #"{"prompt": [{"role": "user", "content": "1+1="}], "chosen": [{"role": "user", "content": "2"}], "rejected": [{"role": "assistant", "content": "3"}]}"#)
        for (data, key) in [(endsWithUser, "chosen[1].role"), (startsWithUser, "chosen[0].role")] {
            for command in [["train", "--out", job.out("o-\(key)").path, "--max-steps", "1"], ["logps"], ["inspect-data", "--index", "1"]] {
                let outcome = try MPIJob.dpo(ranks: 1, [command[0], "--model", model, "--data", data] + command.dropFirst())
                XCTAssertEqual(outcome.status, 1, "\(command[0]): \(outcome.output)")
                XCTAssertTrue(outcome.output.contains("\(data):2: key '\(key)'"), "\(command[0]): \(outcome.output)")
                XCTAssertTrue(outcome.output.contains("first and last turns of chosen and rejected must be the assistant's"),
                              "\(command[0]): \(outcome.output)")
            }
            let skipped = try MPIJob.dpo(ranks: 1, ["train", "--model", model, "--data", data, "--out", job.out("s-\(key)").path,
                                                    "--max-steps", "1", "--skip-invalid"])
            XCTAssertEqual(skipped.status, 0, skipped.output)
            XCTAssertTrue(skipped.output.contains("2 pairs read, 2 kept, 0 dropped by truncation, 1 invalid records skipped"), skipped.output)
        }
    }
}
