import Foundation
import XCTest
@testable import Tokenization

/// Chat templates: renderings equal `transformers`' `apply_chat_template` on the fixture configs, with the
/// model's own template text (read from `chat_template.jinja`, else `tokenizer_config.json`) and the built-ins.
final class ChatTemplateTests: XCTestCase {
    struct Golden: Decodable { var renderings: [String: [Rendering]] }

    static var fixtures: URL { Bundle.module.url(forResource: "Fixtures", withExtension: nil)! }

    func renderings(_ name: String) throws -> [Rendering] {
        let golden = try JSONDecoder().decode(Golden.self, from: Data(contentsOf: Self.fixtures.appendingPathComponent("golden.json")))
        return try XCTUnwrap(golden.renderings[name])
    }

    func testLlama3TemplateMatchesTransformers() throws {
        let tokenizer = try loadTokenizer(from: Self.fixtures.appendingPathComponent("llama3_style"))
        guard case .tokenizerConfig = tokenizer.chatTemplate.origin else { return XCTFail("\(tokenizer.chatTemplate.origin)") }
        XCTAssertEqual(tokenizer.bosTokenId, tokenizer.tokenToId("<|begin_of_text|>"))
        XCTAssertEqual(tokenizer.eosTokenId, tokenizer.tokenToId("<|eot_id|>"))
        try checkRenderings(renderings("llama3_style"), tokenizer: tokenizer, template: tokenizer.chatTemplate)
        try checkRenderings(renderings("llama3_style"), tokenizer: tokenizer, template: .llama3)
    }

    func testChatMLTemplateMatchesTransformers() throws {
        let tokenizer = try loadTokenizer(from: Self.fixtures.appendingPathComponent("qwen2_style/tokenizer.json"))
        XCTAssertNotEqual(tokenizer.chatTemplate, .none)
        try checkRenderings(renderings("qwen2_style"), tokenizer: tokenizer, template: tokenizer.chatTemplate)
        try checkRenderings(renderings("qwen2_style"), tokenizer: tokenizer, template: .chatml)
    }

    func testSourcesInTransformersOrderAndNoTemplate() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("chat-template-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        try TokenizerFiles.writeByteTokenizer(to: directory)
        // tokenizer_config.json's chat_template when there is no chat_template.jinja.
        let fromConfig = try loadTokenizer(from: directory)
        XCTAssertEqual(fromConfig.chatTemplate.origin, .tokenizerConfig(path: directory.appendingPathComponent("tokenizer_config.json").path))
        XCTAssertTrue(fromConfig.chatTemplate.summary.contains("chat_template of"), fromConfig.chatTemplate.summary)
        // chat_template.jinja wins over tokenizer_config.json, as in transformers 5.
        let jinja = "{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}"
        try jinja.write(to: directory.appendingPathComponent("chat_template.jinja"), atomically: true, encoding: .utf8)
        let fromFile = try loadTokenizer(from: directory)
        XCTAssertEqual(fromFile.chatTemplate.source, jinja)
        XCTAssertEqual(try fromFile.renderChat([ChatMessage(role: "user", content: "hi")], addGenerationPrompt: true), "[user]hi")
        XCTAssertTrue(fromFile.chatTemplate.summary.contains("chat_template.jinja, first line: {% for m"), fromFile.chatTemplate.summary)
        // --chat-template names: built-ins, none, or a file; anything else is refused with the reason.
        XCTAssertEqual(try ChatTemplate.named("chatml"), .chatml)
        XCTAssertEqual(try ChatTemplate.named(directory.appendingPathComponent("chat_template.jinja").path).source, jinja)
        XCTAssertThrowsError(try ChatTemplate.named("no-such-template")) {
            XCTAssertEqual($0 as? ChatTemplateError, .unknownName("no-such-template"))
        }
        XCTAssertThrowsError(try ChatTemplate.none.render([ChatMessage(role: "user", content: "x")],
                                                          addGenerationPrompt: true, bosToken: nil))
        // No default system prompt is injected by the built-in ChatML.
        let text = try ChatTemplate.chatml.render([ChatMessage(role: "user", content: "hi")], addGenerationPrompt: true, bosToken: nil)
        XCTAssertEqual(text, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
        // gpt2_style has no tokenizer_config.json.
        XCTAssertEqual(try loadTokenizer(from: Self.fixtures.appendingPathComponent("gpt2_style")).chatTemplate, .none)
    }

    func testEndOfTurnIdIsTheTokenAfterTheReply() throws {
        let byte = try TokenizerFiles.byteTokenizer()
        XCTAssertEqual(byte.chatTemplate.endOfTurnId(tokenizer: byte), 258)  // <|im_end|>
        XCTAssertNil(ChatTemplate.none.endOfTurnId(tokenizer: byte))
        let llama = try loadTokenizer(from: Self.fixtures.appendingPathComponent("llama3_style"))
        XCTAssertEqual(llama.chatTemplate.endOfTurnId(tokenizer: llama), llama.tokenToId("<|eot_id|>"))
    }
}
