import Foundation
import XCTest
@testable import Preference
import Tokenization

/// Conversational encoding by TRL's rules with the model's own template: the cut where the prompt's
/// ids diverge, no EOS appended, and template refusals reported with the data file, record and the
/// template's own message and line.
final class ConversationalEncodingTests: XCTestCase {
    let byte = try! TokenizerFiles.byteTokenizer()
    var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("conversational-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: directory) }

    func template(_ source: String, _ name: String = "t.jinja") throws -> ChatTemplate {
        let url = directory.appendingPathComponent(name)
        try source.write(to: url, atomically: true, encoding: .utf8)
        return try ChatTemplate.named(url.path)
    }

    func ids(_ text: String) -> [Int32] { byte.encode(text) }

    func testGenerationPromptThatTheFullRenderingLacksIsCutWhereTheIdsDiverge() throws {
        // The generation prompt ends with an empty think block the full rendering does not have.
        let source = "{% for m in messages %}<{{ m.role }}>{{ m.content }}<|im_end|>{% endfor %}"
            + "{% if add_generation_prompt %}<assistant><think></think>{% endif %}"
        let encoder = try PreferenceEncoder(tokenizer: byte, options: EncodingOptions(chatTemplate: try template(source)))
        let example = PreferenceExample.conversational(prompt: [ChatMessage(role: "user", content: "q")],
                                                       chosen: [ChatMessage(role: "assistant", content: "yes")],
                                                       rejected: [ChatMessage(role: "assistant", content: "no")])
        let (outcome, mismatch) = try encoder.encode(example, index: 0)
        guard case .encoded(let pair) = outcome else { return XCTFail("\(outcome)") }
        XCTAssertTrue(mismatch)
        XCTAssertEqual(pair.prompt, ids("<user>q<|im_end|><assistant>"))  // the common prefix of the three renderings
        XCTAssertEqual(pair.chosen, ids("yes<|im_end|>"))                   // no EOS appended after the template's own
        XCTAssertEqual(pair.rejected, ids("no<|im_end|>"))
    }

    func testTemplateRefusalNamesTheDataFileRecordAndTheTemplatesLine() throws {
        let source = "{% for m in messages %}\n{% if m.role == 'system' %}\n{{ raise_exception('System role not supported') }}\n"
            + "{% endif %}{{ m.content }}{% endfor %}"
        let data = directory.appendingPathComponent("pairs.jsonl")
        try (#"{"prompt": [{"role": "user", "content": "a"}], "chosen": [{"role": "assistant", "content": "b"}], "rejected": [{"role": "assistant", "content": "c"}]}"#
            + "\n" + #"{"prompt": [{"role": "system", "content": "s"}, {"role": "user", "content": "a"}], "chosen": [{"role": "assistant", "content": "b"}], "rejected": [{"role": "assistant", "content": "c"}]}"#)
            .write(to: data, atomically: true, encoding: .utf8)
        let options = EncodingOptions(chatTemplate: try template(source, "gemma.jinja"))
        XCTAssertThrowsError(try PreferenceData.load(from: data, tokenizer: byte, encoding: options)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("pairs.jsonl"), text)
            XCTAssertTrue(text.contains("pairs.jsonl:2: "), text)
            XCTAssertTrue(text.contains("gemma.jinja:3"), text)
            XCTAssertTrue(text.contains("System role not supported"), text)
        }
    }

    func testCompletionStartingWithAUserTurnIsRefused() throws {
        let encoder = try PreferenceEncoder(tokenizer: byte)
        let example = PreferenceExample.conversational(prompt: [ChatMessage(role: "user", content: "q")],
                                                       chosen: [ChatMessage(role: "user", content: "x")],
                                                       rejected: [ChatMessage(role: "assistant", content: "y")])
        XCTAssertThrowsError(try encoder.encode(example, index: 4)) {
            XCTAssertEqual($0 as? EncodingError, .completionNotAssistant(index: 4, role: "user"))
        }
    }
}

extension ConversationalEncodingTests {
    func testInspectionShowsTheRenderedTextAndWhereTheCompletionStarts() throws {
        let url = directory.appendingPathComponent("c.jsonl")
        try Data(#"{"prompt": [{"role": "user", "content": "1+2="}], "chosen": [{"role": "assistant", "content": "3"}], "rejected": [{"role": "assistant", "content": "4"}]}"#.utf8).write(to: url)
        let lines = try ExampleInspection.describe(file: url, index: 0, tokenizer: byte, options: EncodingOptions(),
                                                   readOptions: DatasetReadOptions())
        XCTAssertTrue(lines.contains { $0.hasPrefix("chat template: chat_template of byte tokenizer_config.json, first line: {% for message") }, "\(lines)")
        XCTAssertTrue(lines.contains(#"rendered prompt (add_generation_prompt=True): "<|im_start|>user\n1+2=<|im_end|>\n<|im_start|>assistant\n""#), "\(lines)")
        XCTAssertTrue(lines.contains(#"rendered prompt+chosen: "<|im_start|>user\n1+2=<|im_end|>\n<|im_start|>assistant\n3<|im_end|>\n""#), "\(lines)")
        XCTAssertTrue(lines.contains(#"  the chosen completion starts at token 23 of its row: "3<|im_end|>\n""#), "\(lines)")
    }
}
