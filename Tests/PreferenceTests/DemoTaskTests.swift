import XCTest
@testable import Preference
import Tokenization

/// The arithmetic demo task: correct/incorrect pairs, held-out prompts disjoint from training ones, the checker.
final class DemoTaskTests: XCTestCase {
    let task = DemoTask.arithmetic

    func answer(_ prompt: String) -> Int {
        let parts = prompt.dropLast().split(separator: "+").map { Int($0)! }
        return parts[0] + parts[1]
    }

    func testPreferencePairsHaveCorrectChosenAndWrongRejected() {
        let examples = task.preferenceExamples(n: 500, seed: 1)
        XCTAssertEqual(examples.count, 500)
        for case .standard(let prompt, let chosen, let rejected) in examples {
            XCTAssertTrue(task.isCorrect(prompt: prompt, completion: chosen))
            XCTAssertFalse(task.isCorrect(prompt: prompt, completion: rejected))
            XCTAssertGreaterThanOrEqual(Int(rejected)!, 0)
        }
        XCTAssertEqual(examples, task.preferenceExamples(n: 500, seed: 1))
        XCTAssertNotEqual(examples, task.preferenceExamples(n: 500, seed: 2))
    }

    func testHeldOutPromptsAreDisjointFromTraining() {
        let training = Set(task.preferenceExamples(n: 2000, seed: 5).map { example -> String in
            guard case .standard(let prompt, _, _) = example else { return "" }
            return prompt
        }).union(task.supervisedExamples(n: 2000, seed: 9, wrongShare: 0.3).map { example -> String in
            guard case .promptCompletion(let prompt, _) = example else { return "" }
            return prompt
        })
        let heldOut = Set(task.heldOutPrompts(n: 1000, seed: 3))
        XCTAssertTrue(training.isDisjoint(with: heldOut))
        XCTAssertEqual(heldOut.count, task.heldOutPromptCount)
        XCTAssertGreaterThan(task.heldOutPromptCount, 50)
        XCTAssertEqual(training.count + heldOut.count, 20 * 20)
        XCTAssertEqual(Set(task.heldOutPrompts(n: 10, seed: 3)).count, 10)
    }

    func testSupervisedWrongShare() {
        for share in [0.0, 0.25, 1.0] {
            let examples = task.supervisedExamples(n: 200, seed: 4, wrongShare: share)
            let wrong = examples.filter { example in
                guard case .promptCompletion(let prompt, let completion) = example else { return false }
                return !task.isCorrect(prompt: prompt, completion: completion)
            }.count
            XCTAssertEqual(wrong, Int(200 * share))
        }
    }

    func testAnswerChecker() {
        XCTAssertTrue(task.isCorrect(prompt: "12+7=", completion: "19"))
        XCTAssertTrue(task.isCorrect(prompt: "12+7=", completion: " 19<|im_end|>"))
        XCTAssertTrue(task.isCorrect(prompt: "12+7=", completion: "19\n"))
        XCTAssertFalse(task.isCorrect(prompt: "12+7=", completion: "190"))
        XCTAssertFalse(task.isCorrect(prompt: "12+7=", completion: "1"))
        XCTAssertFalse(task.isCorrect(prompt: "12+7=", completion: ""))
        XCTAssertFalse(task.isCorrect(prompt: "nonsense", completion: "19"))
        XCTAssertEqual(try DemoTask.named("arithmetic"), .arithmetic)
        XCTAssertThrowsError(try DemoTask.named("chess"))
    }

    func testConversationalVariantAndPromptIdsMatchTrainingRows() throws {
        let tokenizer = try TokenizerFiles.byteTokenizer()
        let examples = task.preferenceExamples(n: 5, seed: 2, conversational: true)
        let plain = task.preferenceExamples(n: 5, seed: 2)
        let encoder = try PreferenceEncoder(tokenizer: tokenizer)
        for (example, plainExample) in zip(examples, plain) {
            guard case .conversational(let prompt, let chosen, _) = example,
                  case .standard(let plainPrompt, let plainChosen, _) = plainExample else { return XCTFail() }
            XCTAssertEqual(prompt, [ChatMessage(role: "user", content: plainPrompt)])
            XCTAssertEqual(chosen, [ChatMessage(role: "assistant", content: plainChosen)])
            guard case .encoded(let pair) = try encoder.encode(example, index: 0).outcome,
                  case .encoded(let plainPair) = try encoder.encode(plainExample, index: 0).outcome else { return XCTFail() }
            XCTAssertEqual(try task.promptIds(for: plainPrompt, tokenizer: tokenizer, conversational: true), pair.prompt)
            XCTAssertEqual(try task.promptIds(for: plainPrompt, tokenizer: tokenizer, conversational: false), plainPair.prompt)
        }
        let messages = task.supervisedExamples(n: 3, seed: 0, wrongShare: 0, conversational: true)
        guard case .messages(let list) = messages[0] else { return XCTFail() }
        XCTAssertEqual(list.map(\.role), ["user", "assistant"])
    }

    func testWrittenFileReadsBack() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("demo-\(UUID().uuidString).jsonl")
        defer { try? FileManager.default.removeItem(at: url) }
        let examples = task.preferenceExamples(n: 20, seed: 0)
        try DatasetWriter.jsonLines(examples).write(to: url)
        XCTAssertEqual(try DatasetReader.readPreferences(from: url).examples, examples)
        let supervised = task.supervisedExamples(n: 20, seed: 0, wrongShare: 0.5)
        try DatasetWriter.jsonLines(supervised).write(to: url)
        XCTAssertEqual(try DatasetReader.readSupervised(from: url).examples, supervised)
    }
}

/// The loaders the trainer calls: file -> encoded pairs -> rows.
final class PreferenceDataTests: XCTestCase {
    func testLoadAndBatchTheDemoFile() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("data-\(UUID().uuidString).jsonl")
        defer { try? FileManager.default.removeItem(at: url) }
        try DatasetWriter.jsonLines(DemoTask.arithmetic.preferenceExamples(n: 30, seed: 0)).write(to: url)
        let tokenizer = try TokenizerFiles.byteTokenizer()
        let data = try PreferenceData.load(from: url, tokenizer: tokenizer)
        XCTAssertEqual(data.pairs.count, 30)
        XCTAssertEqual(data.format, .standard)
        XCTAssertEqual(data.paddingId, 256)
        XCTAssertTrue(data.startupLines[0].contains("30 example(s)"))
        let plan = try BatchPlan(exampleCount: data.pairs.count, batchSize: 4, worldSize: 2, rank: 1, seed: 0,
                                 groupByLength: data.rowLengths)
        let rows = data.rows(for: plan.batches(epoch: 0)[0])
        XCTAssertEqual(rows.rows, 8)
        XCTAssertEqual(rows.inputIds.count, 8 * rows.seqLen)
        // Every row scores its answer digits and the EOS.
        for row in 0..<8 { XCTAssertTrue((2...3).contains(rows.completionTokenCounts[row])) }

        try DatasetWriter.jsonLines(DemoTask.arithmetic.supervisedExamples(n: 10, seed: 0, wrongShare: 0)).write(to: url)
        let supervised = try SupervisedData.load(from: url, tokenizer: tokenizer)
        XCTAssertEqual(supervised.rows(for: [0, 1, 2]).rows, 3)
        XCTAssertThrowsError(try PreferenceData.load(from: url, tokenizer: tokenizer))
    }
}
