import Foundation
import XCTest
@testable import Tokenization

/// Chat templates: renderings equal `transformers`' `apply_chat_template` on the fixture configs, and
/// templates are recognised from `tokenizer_config.json`.
final class ChatTemplateTests: XCTestCase {
    struct Golden: Decodable { var renderings: [String: [Rendering]] }

    static var fixtures: URL { Bundle.module.url(forResource: "Fixtures", withExtension: nil)! }

    func renderings(_ name: String) throws -> [Rendering] {
        let golden = try JSONDecoder().decode(Golden.self, from: Data(contentsOf: Self.fixtures.appendingPathComponent("golden.json")))
        return try XCTUnwrap(golden.renderings[name])
    }

    func testLlama3TemplateMatchesTransformers() throws {
        let tokenizer = try loadTokenizer(from: Self.fixtures.appendingPathComponent("llama3_style"))
        XCTAssertEqual(tokenizer.chatTemplate, .llama3)
        XCTAssertEqual(tokenizer.bosTokenId, tokenizer.tokenToId("<|begin_of_text|>"))
        XCTAssertEqual(tokenizer.eosTokenId, tokenizer.tokenToId("<|eot_id|>"))
        try checkRenderings(renderings("llama3_style"), tokenizer: tokenizer, template: .llama3)
    }

    func testChatMLTemplateMatchesTransformers() throws {
        let tokenizer = try loadTokenizer(from: Self.fixtures.appendingPathComponent("qwen2_style/tokenizer.json"))
        XCTAssertEqual(tokenizer.chatTemplate, .chatml)
        try checkRenderings(renderings("qwen2_style"), tokenizer: tokenizer, template: .chatml)
    }

    func testRecognitionAndNoTemplate() throws {
        XCTAssertEqual(ChatTemplate.recognise(nil), .none)
        XCTAssertEqual(ChatTemplate.recognise("{{ messages }}"), .none)
        XCTAssertTrue(ChatTemplate.recognitionSummary(source: "{{ x }}", override: nil).contains("not recognised"))
        XCTAssertTrue(ChatTemplate.recognitionSummary(source: ChatTemplate.chatmlJinja, override: nil).contains("chatml"))
        XCTAssertTrue(ChatTemplate.recognitionSummary(source: nil, override: .llama3).contains("--chat-template"))
        XCTAssertThrowsError(try ChatTemplate.none.render([ChatMessage(role: "user", content: "x")],
                                                          addGenerationPrompt: true, bosToken: nil))
        // No default system prompt is injected.
        let text = try ChatTemplate.chatml.render([ChatMessage(role: "user", content: "hi")], addGenerationPrompt: true, bosToken: nil)
        XCTAssertEqual(text, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
        // gpt2_style has no tokenizer_config.json.
        XCTAssertEqual(try loadTokenizer(from: Self.fixtures.appendingPathComponent("gpt2_style")).chatTemplate, .none)
    }
}
