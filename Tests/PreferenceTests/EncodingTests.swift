import Foundation
import XCTest
@testable import Preference
import Tokenization

/// Encoding per DESIGN.md section 3: masks for each format, EOS rules, truncation, drops, mismatch warning.
final class EncodingTests: XCTestCase {
    let byte = try! TokenizerFiles.byteTokenizer()
    let eos: Int32 = 258
    func ids(_ text: String) -> [Int32] { text.utf8.map { Int32($0) } }

    func encodePair(_ example: PreferenceExample, _ options: EncodingOptions = EncodingOptions(),
                    tokenizer: (any Tokenizer)? = nil) throws -> EncodingOutcome {
        try PreferenceEncoder(tokenizer: tokenizer ?? byte, options: options).encode(example, index: 0).outcome
    }

    func testStandardHasNoBOSAndGetsEOS() throws {
        guard case .encoded(let pair) = try encodePair(.standard(prompt: "12+7=", chosen: "19", rejected: "18")) else { return XCTFail() }
        XCTAssertEqual(pair.prompt, ids("12+7="))
        XCTAssertEqual(pair.chosen, ids("19") + [eos])
        XCTAssertEqual(pair.rejected, ids("18") + [eos])
        XCTAssertEqual(pair.chosenSequence.completionMask, [false, false, false, false, false, true, true, true])
    }

    func testConversationalChatMLCompletionIsTheRestAndHasNoDoubledEOS() throws {
        let example = PreferenceExample.conversational(
            prompt: [ChatMessage(role: "user", content: "hi")],
            chosen: [ChatMessage(role: "assistant", content: "yo")], rejected: [ChatMessage(role: "assistant", content: "no")])
        guard case .encoded(let pair) = try encodePair(example) else { return XCTFail() }
        XCTAssertEqual(pair.prompt, [257] + ids("user\nhi") + [258] + ids("\n") + [257] + ids("assistant\n"))
        XCTAssertEqual(pair.chosen, ids("yo") + [258] + ids("\n"))  // content<|im_end|>\n, no second EOS
        XCTAssertEqual(pair.rejected, ids("no") + [258] + ids("\n"))
        let mask = pair.chosenSequence.completionMask
        XCTAssertEqual(mask.filter { $0 }.count, 4)
        XCTAssertFalse(mask[..<pair.prompt.count].contains(true))
    }

    func testConversationalWhoseMarkerIsNotEOSGetsNoEOS() throws {
        // The byte tokenizer's EOS is <|im_end|>; the Llama-3 template ends turns with <|eot_id|> text.
        // TRL appends no EOS to conversational completions: the template's end-of-turn text ends them.
        let example = PreferenceExample.conversational(
            prompt: [ChatMessage(role: "user", content: "hi")],
            chosen: [ChatMessage(role: "assistant", content: " yo ")], rejected: [ChatMessage(role: "assistant", content: "no")])
        guard case .encoded(let pair) = try encodePair(example, EncodingOptions(chatTemplate: .llama3)) else { return XCTFail() }
        XCTAssertEqual(pair.chosen, ids("yo<|eot_id|>"))
        XCTAssertTrue(pair.prompt.starts(with: ids("<|start_header_id|>user")))
    }

    func testConversationalWithoutTemplateIsRefused() throws {
        let example = PreferenceExample.conversational(
            prompt: [ChatMessage(role: "user", content: "hi")],
            chosen: [ChatMessage(role: "assistant", content: "a")], rejected: [ChatMessage(role: "assistant", content: "b")])
        XCTAssertThrowsError(try encodePair(example, EncodingOptions(chatTemplate: ChatTemplate.none))) {
            XCTAssertEqual($0 as? EncodingError, .noChatTemplate)
        }
    }

    // MARK: - Truncation

    func testPromptTruncationKeepEndAndKeepStart() throws {
        let example = PreferenceExample.standard(prompt: "abcdef", chosen: "x", rejected: "y")
        guard case .encoded(let end) = try encodePair(example, EncodingOptions(maxLength: 10, maxPromptLength: 3)),
              case .encoded(let start) = try encodePair(example, EncodingOptions(maxLength: 10, maxPromptLength: 3, truncation: .keepStart))
        else { return XCTFail() }
        XCTAssertEqual(end.prompt, ids("def"))
        XCTAssertEqual(start.prompt, ids("abc"))
        XCTAssertTrue(end.promptTruncated)
        XCTAssertFalse(end.chosenTruncated)
    }

    func testCompletionIsCutAtItsEndAndKeepsNoEOS() throws {
        let example = PreferenceExample.standard(prompt: "ab", chosen: "cdefgh", rejected: "x")
        guard case .encoded(let pair) = try encodePair(example, EncodingOptions(maxLength: 5, maxPromptLength: 4)) else { return XCTFail() }
        XCTAssertEqual(pair.chosen, ids("cde"))
        XCTAssertTrue(pair.chosenTruncated)
        XCTAssertEqual(pair.rejected, ids("x") + [eos])  // fits: 2 + 2 <= 5
        XCTAssertFalse(pair.rejectedTruncated)
    }

    func testPairWithEmptyCompletionAfterTruncationIsDroppedAndCounted() throws {
        let encoder = try PreferenceEncoder(tokenizer: byte, options: EncodingOptions(maxLength: 4, maxPromptLength: 4))
        let examples: [PreferenceExample] = [.standard(prompt: "abcdef", chosen: "x", rejected: "y"),
                                             .standard(prompt: "ab", chosen: "x", rejected: "y")]
        let (pairs, report) = try encoder.encode(examples)
        XCTAssertEqual(pairs.map(\.index), [1])
        XCTAssertEqual(report.dropped, [.emptyChosenAfterTruncation: 1])
        XCTAssertEqual(report.encodedCount, 1)
        XCTAssertTrue(report.summaryLines.contains { $0.contains("dropped 1 pair") })
    }

    func testInvalidLengthsAndMissingEOSAreSetupErrors() throws {
        XCTAssertThrowsError(try PreferenceEncoder(tokenizer: byte, options: EncodingOptions(maxLength: 1)))
        var document = try JSONSerialization.jsonObject(with: TokenizerFiles.byteTokenizerJSON()) as! [String: Any]
        document["added_tokens"] = []
        let noEOS = try BPETokenizer(tokenizerJSON: JSONSerialization.data(withJSONObject: document), tokenizerConfigJSON: nil,
                                     specialTokensMapJSON: nil, sourcePath: "x")
        XCTAssertThrowsError(try PreferenceEncoder(tokenizer: noEOS)) { XCTAssertEqual($0 as? EncodingError, .noEOSToken) }
    }

    // MARK: - Boundary mismatch

    /// The byte tokenizer plus one merge "a"+"b" -> id 259.
    func mergingTokenizer() throws -> BPETokenizer {
        var document = try JSONSerialization.jsonObject(with: TokenizerFiles.byteTokenizerJSON()) as! [String: Any]
        var model = document["model"] as! [String: Any]
        var vocabulary = model["vocab"] as! [String: Int]
        vocabulary["ab"] = 259
        model["vocab"] = vocabulary
        model["merges"] = ["a b"]
        document["model"] = model
        document["pre_tokenizer"] = ["type": "ByteLevel", "add_prefix_space": false, "use_regex": true]
        return try BPETokenizer(tokenizerJSON: JSONSerialization.data(withJSONObject: document),
                                tokenizerConfigJSON: TokenizerFiles.byteTokenizerConfigJSON(), specialTokensMapJSON: nil,
                                sourcePath: "merging")
    }

    func testPromptBoundaryMismatchIsReportedOnceWithIndex() throws {
        let tokenizer = try mergingTokenizer()
        XCTAssertEqual(tokenizer.encode("xab"), [120, 259])
        let encoder = try PreferenceEncoder(tokenizer: tokenizer)
        let (pairs, report) = try encoder.encode([.standard(prompt: "q", chosen: "b", rejected: "c"),
                                                  .standard(prompt: "xa", chosen: "b", rejected: "c"),
                                                  .standard(prompt: "ya", chosen: "b", rejected: "c")])
        XCTAssertEqual(report.firstPromptMismatchIndex, 1)
        XCTAssertEqual(report.promptMismatchCount, 2)
        XCTAssertEqual(pairs[1].prompt, [120, 97])  // rows keep prompt and completion tokenized separately
        XCTAssertEqual(pairs[1].chosen, [98, eos])
        XCTAssertEqual(report.summaryLines.filter { $0.hasPrefix("warning") }.count, 1)
    }

    // MARK: - Supervised

    func testSupervisedPromptCompletion() throws {
        let encoder = try SupervisedEncoder(tokenizer: byte)
        let sequence = try XCTUnwrap(encoder.encode(.promptCompletion(prompt: "1+1=", completion: "2"), index: 0)).sequence
        XCTAssertEqual(sequence.tokens, ids("1+1=2") + [eos])
        XCTAssertEqual(sequence.completionMask, [false, false, false, false, true, true])
    }

    func testSupervisedMessagesMaskEveryAssistantTurn() throws {
        let encoder = try SupervisedEncoder(tokenizer: byte)
        let messages = [ChatMessage(role: "system", content: "s"), ChatMessage(role: "user", content: "u1"),
                        ChatMessage(role: "assistant", content: "a1"), ChatMessage(role: "user", content: "u2"),
                        ChatMessage(role: "assistant", content: "a2")]
        let sequence = try XCTUnwrap(encoder.encode(.messages(messages), index: 0)).sequence
        let full = try ChatTemplate.chatml.render(messages, addGenerationPrompt: false, bosToken: nil)
        XCTAssertEqual(sequence.tokens, byte.encode(full))
        let masked = zip(sequence.tokens, sequence.completionMask).filter(\.1).map(\.0)
        XCTAssertEqual(masked, ids("a1") + [258] + ids("\n") + ids("a2") + [258] + ids("\n"))
    }

    func testSupervisedDropsWhenNoCompletionSurvives() throws {
        let encoder = try SupervisedEncoder(tokenizer: byte, options: EncodingOptions(maxLength: 3, maxPromptLength: 3))
        let (sequences, report) = try encoder.encode([.promptCompletion(prompt: "abc", completion: "d"),
                                                      .promptCompletion(prompt: "a", completion: "bcd")])
        XCTAssertEqual(sequences.count, 1)
        XCTAssertEqual(sequences[0].tokens, ids("abc"))  // completion cut, no EOS
        XCTAssertEqual(report.droppedCount, 1)
        XCTAssertEqual(report.truncatedCompletionCount, 1)
    }
}
