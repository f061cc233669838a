import Foundation
import XCTest
@testable import Tokenization

/// The built-in byte tokenizer: the files it writes are the ones Hugging Face was checked against
/// (Fixtures/check_byte_tokenizer.py), and it encodes like Hugging Face.
final class ByteTokenizerTests: XCTestCase {
    struct Golden: Decodable {
        struct Case: Decodable {
            var ids: [Int32]
            var decoded: String
            var decoded_skipping_special: String
        }
        var strings: [String]
        var cases: [Case]
        var renderings: [Rendering]
    }

    static var fixtures: URL { Bundle.module.url(forResource: "Fixtures", withExtension: nil)! }

    func testWrittenFilesAreTheOnesCheckedWithHuggingFace() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("byte-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        try TokenizerFiles.writeByteTokenizer(to: directory)
        for name in TokenizerFiles.fileNames {
            let written = try Data(contentsOf: directory.appendingPathComponent(name))
            let committed = try Data(contentsOf: Self.fixtures.appendingPathComponent("byte").appendingPathComponent(name))
            XCTAssertEqual(written, committed, "\(name) differs from the committed fixture: rerun check_byte_tokenizer.py")
        }
    }

    func testEncodesLikeHuggingFace() throws {
        let golden = try JSONDecoder().decode(Golden.self, from: Data(contentsOf: Self.fixtures.appendingPathComponent("byte_golden.json")))
        let tokenizer = try loadTokenizer(from: URL(fileURLWithPath: "byte"))
        for (text, expected) in zip(golden.strings, golden.cases) {
            XCTAssertEqual(tokenizer.encode(text), expected.ids, text.debugDescription)
            XCTAssertEqual(tokenizer.encode(text, addSpecialTokens: true, parseSpecialTokens: true), expected.ids)
            XCTAssertEqual(tokenizer.decode(expected.ids), expected.decoded)
            XCTAssertEqual(tokenizer.decode(expected.ids, skipSpecialTokens: true), expected.decoded_skipping_special)
        }
        XCTAssertEqual(golden.cases.count, golden.strings.count)
    }

    func testChatMLRenderingsMatchTransformers() throws {
        let golden = try JSONDecoder().decode(Golden.self, from: Data(contentsOf: Self.fixtures.appendingPathComponent("byte_golden.json")))
        let tokenizer = try TokenizerFiles.byteTokenizer()
        XCTAssertEqual(tokenizer.chatTemplate, .chatml)
        try checkRenderings(golden.renderings, tokenizer: tokenizer, template: .chatml)
    }

    func testIdsAndSpecialTokens() throws {
        let tokenizer = try TokenizerFiles.byteTokenizer()
        XCTAssertEqual(tokenizer.vocabularySize, 259)
        XCTAssertEqual(tokenizer.padTokenId, 256)
        XCTAssertEqual(tokenizer.tokenToId("<|im_start|>"), 257)
        XCTAssertEqual(tokenizer.eosTokenId, 258)
        XCTAssertNil(tokenizer.bosTokenId)
        XCTAssertEqual(tokenizer.encode("A\u{0}\u{FF}"), [65, 0, 195, 191])
        for byte in 0..<256 {
            XCTAssertEqual(tokenizer.idToToken(Int32(byte)), String(ByteLevelAlphabet.characterOfByte[byte]))
        }
        XCTAssertTrue(tokenizer.isSpecialToken(258))
        XCTAssertFalse(tokenizer.isSpecialToken(65))
    }

    func testCopyPutsTokenizerFilesIntoAModelDirectory() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("copy-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        try TokenizerFiles.writeByteTokenizer(to: root.appendingPathComponent("a"))
        try TokenizerFiles.copy(from: root.appendingPathComponent("a"), to: root.appendingPathComponent("b"))
        try TokenizerFiles.copy(from: root.appendingPathComponent("a"), to: root.appendingPathComponent("b"))  // replaces
        let copied = try loadTokenizer(from: root.appendingPathComponent("b"))
        XCTAssertEqual(copied.eosTokenId, 258)
        XCTAssertThrowsError(try TokenizerFiles.copy(from: root.appendingPathComponent("missing"), to: root))
    }
}

/// One chat rendering by `transformers.AutoTokenizer.apply_chat_template`.
struct Rendering: Decodable {
    var messages: [ChatMessage]
    var add_generation_prompt: Bool
    var text: String
    var ids: [Int32]
}

func checkRenderings(_ renderings: [Rendering], tokenizer: any Tokenizer, template: ChatTemplate,
                     file: StaticString = #filePath, line: UInt = #line) throws {
    XCTAssertFalse(renderings.isEmpty, file: file, line: line)
    let bos = tokenizer.bosTokenId.flatMap(tokenizer.idToToken)
    for rendering in renderings {
        let text = try template.render(rendering.messages, addGenerationPrompt: rendering.add_generation_prompt, bosToken: bos)
        XCTAssertEqual(text, rendering.text, file: file, line: line)
        XCTAssertEqual(tokenizer.encode(text), rendering.ids, file: file, line: line)
    }
}
