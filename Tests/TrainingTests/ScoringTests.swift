import Foundation
import Llama
import Preference
import Tokenization
import XCTest
@testable import DPOTools
@testable import Training

/// Task scoring (`dpo score`) and streamed generation (`dpo generate`).
final class ScoringTests: XCTestCase {

    private func tinyModel(seed: UInt64 = 3) throws -> LlamaModel {
        let config = LlamaPreset.tiny.config
        let model = try LlamaModel(config: config, precision: .fp32, trainable: false)
        WeightInitializer(seed: seed).weights(for: config).withUnsafeBufferPointer { model.loadWeights($0) }
        return model
    }

    // MARK: - Streaming text

    /// Byte tokens of multi-byte characters: nothing is emitted until a character is complete,
    /// and the pieces join to exactly the decoded text.
    func testTextStreamHoldsBackIncompleteUTF8() throws {
        let tokenizer = try TokenizerFiles.byteTokenizer()
        let text = "h\u{E9}llo \u{20AC}1 \u{1F600}!"   // 2-, 3- and 4-byte sequences
        let ids = tokenizer.encode(text)
        XCTAssertEqual(ids.count, text.utf8.count, "the byte tokenizer has one id per byte")
        let stream = TextStream(tokenizer: tokenizer)
        var pieces: [String] = []
        for id in ids { pieces.append(stream.push(id)) }
        pieces.append(stream.finish())
        XCTAssertEqual(pieces.joined(), text)
        XCTAssertFalse(pieces.joined().unicodeScalars.contains("\u{FFFD}"))
        // "h" then the first byte of é: nothing yet; its second byte completes it.
        XCTAssertEqual(pieces[0], "h")
        XCTAssertEqual(pieces[1], "")
        XCTAssertEqual(pieces[2], "\u{E9}")
        // The emoji's 4 bytes: three empty pieces, then the character.
        let emojiStart = "h\u{E9}llo \u{20AC}1 ".utf8.count
        XCTAssertEqual(Array(pieces[emojiStart..<(emojiStart + 4)]), ["", "", "", "\u{1F600}"])
    }

    /// A sequence cut off at the end is flushed by `finish` as U+FFFD rather than lost.
    func testTextStreamFinishFlushesATruncatedSequence() throws {
        let tokenizer = try TokenizerFiles.byteTokenizer()
        let stream = TextStream(tokenizer: tokenizer)
        XCTAssertEqual(stream.push(Int32(UInt8(ascii: "a"))), "a")
        XCTAssertEqual(stream.push(0xE2), "")
        XCTAssertEqual(stream.push(0x82), "")
        XCTAssertEqual(stream.finish(), "\u{FFFD}")
    }

    func testSpecialTokensAreNotStreamed() throws {
        let tokenizer = try TokenizerFiles.byteTokenizer()
        let stream = TextStream(tokenizer: tokenizer)
        XCTAssertEqual(stream.push(Int32(UInt8(ascii: "7"))), "7")
        XCTAssertEqual(stream.push(258), "")   // <|im_end|>
        XCTAssertEqual(stream.finish(), "")
    }

    // MARK: - Generation

    func testGenerationStreamsWhatItReturns() throws {
        let model = try tinyModel()
        let tokenizer = try TokenizerFiles.byteTokenizer()
        var parameters = TextGeneration.Parameters(prompt: "12+7=")
        parameters.maxNewTokens = 12
        parameters.sampling = SamplingOptions(temperature: 1, topP: 0.9, seed: 5)
        var streamed = ""
        let result = try TextGeneration.generate(model: model, tokenizer: tokenizer, parameters) { streamed += $0 }
        XCTAssertLessThanOrEqual(result.generatedIds.count, 12)
        XCTAssertEqual(result.promptTokens, 5)
        XCTAssertEqual(streamed, result.text)
        // Same seed, same text.
        let again = try TextGeneration.generate(model: model, tokenizer: tokenizer, parameters) { _ in }
        XCTAssertEqual(again.generatedIds, result.generatedIds)
    }

    func testChatPromptUsesTheTemplate() throws {
        let tokenizer = try TokenizerFiles.byteTokenizer()
        var parameters = TextGeneration.Parameters(prompt: "hi")
        parameters.chat = true
        let ids = try TextGeneration.promptIds(parameters, tokenizer: tokenizer)
        XCTAssertEqual(tokenizer.decode(ids), "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
    }

    func testGenerationRejectsBadOptions() throws {
        let model = try tinyModel()
        let tokenizer = try TokenizerFiles.byteTokenizer()
        var parameters = TextGeneration.Parameters(prompt: "")
        XCTAssertThrowsError(try TextGeneration.generate(model: model, tokenizer: tokenizer, parameters) { _ in }) {
            XCTAssertTrue("\($0)".contains("non-empty --prompt"), "\($0)")
        }
        parameters.prompt = "x"
        parameters.sampling.topP = 0
        XCTAssertThrowsError(try TextGeneration.generate(model: model, tokenizer: tokenizer, parameters) { _ in }) {
            XCTAssertTrue("\($0)".contains("--top-p"), "\($0)")
        }
    }

    // MARK: - Task scoring

    func testTrainingAndHeldOutPromptsPartitionTheTask() {
        let task = DemoTask.arithmetic
        let heldOut = Set(task.heldOutPrompts(n: task.heldOutPromptCount, seed: 0))
        let train = TaskScoring.trainingPrompts(task)
        XCTAssertEqual(heldOut.count, task.heldOutPromptCount)
        XCTAssertEqual(Set(train).count, train.count)
        XCTAssertTrue(heldOut.isDisjoint(with: train))
        XCTAssertEqual(heldOut.count + train.count, (DemoTask.largestOperand + 1) * (DemoTask.largestOperand + 1))
        // Training prompts are the ones the task's training files use.
        let used = Set(task.preferenceExamples(n: 2000, seed: 4).map { example -> String in
            guard case .standard(let prompt, _, _) = example else { return "" }
            return prompt
        })
        XCTAssertTrue(used.isSubset(of: Set(train)))
    }

    /// Scoring agrees with checking each greedy answer by hand, and is deterministic.
    func testScoreCountsCorrectGreedyAnswers() throws {
        let model = try tinyModel()
        let tokenizer = try TokenizerFiles.byteTokenizer()
        var parameters = TaskScoring.Parameters(task: .arithmetic, n: 10)
        parameters.maxNewTokens = 3
        let answers = try TaskScoring.answer(model: model, tokenizer: tokenizer, parameters)
        XCTAssertEqual(answers.count, 10)
        for answer in answers {
            let ids = tokenizer.encode(answer.prompt)
            let generated = model.generate(prompt: ids, maxNewTokens: 3, sampling: .greedy, stopTokens: [258], onToken: nil)
            XCTAssertEqual(answer.completion, tokenizer.decode(generated, skipSpecialTokens: true))
            XCTAssertEqual(answer.isCorrect, DemoTask.arithmetic.isCorrect(prompt: answer.prompt, completion: answer.completion))
        }
        let result = try TaskScoring.score(model: model, tokenizer: tokenizer, parameters)
        XCTAssertEqual(result.n, 10)
        XCTAssertEqual(result.correct, answers.filter(\.isCorrect).count)
        XCTAssertEqual(result.accuracy, Double(result.correct) / 10)
        XCTAssertEqual(try TaskScoring.score(model: model, tokenizer: tokenizer, parameters), result)
    }

    func testScoreRejectsNonPositiveN() throws {
        let model = try tinyModel()
        let tokenizer = try TokenizerFiles.byteTokenizer()
        XCTAssertThrowsError(try TaskScoring.score(model: model, tokenizer: tokenizer, TaskScoring.Parameters(task: .arithmetic, n: 0))) {
            XCTAssertEqual("\($0)", "invalid option: --n must be positive, got 0")
        }
    }

    func testMissingModelDirectoryIsNamed() {
        XCTAssertThrowsError(try TaskScoring.loadModel("/nonexistent/model")) {
            XCTAssertEqual("\($0)", "model: --model /nonexistent/model: no such directory")
        }
    }
}
