import Foundation
import XCTest
@testable import Tokenization

/// Compares encoding and decoding, id for id, with Hugging Face `tokenizers` on the tokenizers and
/// strings written by Fixtures/make_tokenizer_fixture.py.
final class GoldenTokenizerTests: XCTestCase {
    struct Golden: Decodable {
        struct Case: Decodable {
            var ids: [Int32]
            var ids_with_special_tokens: [Int32]
            var decoded: String
            var decoded_skipping_special: String
        }
        var strings: [String]
        var tokenizers: [String: [Case]]
    }

    static var fixtures: URL { Bundle.module.url(forResource: "Fixtures", withExtension: nil)! }

    func golden() throws -> Golden {
        try JSONDecoder().decode(Golden.self, from: Data(contentsOf: Self.fixtures.appendingPathComponent("golden.json")))
    }

    func check(_ name: String) throws {
        let golden = try golden()
        let tokenizer = try loadTokenizer(from: Self.fixtures.appendingPathComponent(name))
        let cases = try XCTUnwrap(golden.tokenizers[name])
        XCTAssertEqual(cases.count, golden.strings.count)
        for (text, expected) in zip(golden.strings, cases) {
            XCTAssertEqual(tokenizer.encode(text, addSpecialTokens: false, parseSpecialTokens: true), expected.ids,
                           "\(name): ids of \(text.debugDescription)")
            XCTAssertEqual(tokenizer.encode(text, addSpecialTokens: true, parseSpecialTokens: true),
                           expected.ids_with_special_tokens, "\(name): ids with special tokens of \(text.debugDescription)")
            XCTAssertEqual(tokenizer.decode(expected.ids, skipSpecialTokens: false), expected.decoded,
                           "\(name): decode of \(text.debugDescription)")
            XCTAssertEqual(tokenizer.decode(expected.ids, skipSpecialTokens: true), expected.decoded_skipping_special,
                           "\(name): decode skipping special tokens of \(text.debugDescription)")
        }
    }

    func testGPT2StyleByteLevelMatchesHuggingFace() throws { try check("gpt2_style") }

    func testLlama3StyleSplitWithBOSPostProcessorMatchesHuggingFace() throws { try check("llama3_style") }

    func testQwen2StyleListMergesMatchesHuggingFace() throws { try check("qwen2_style") }

    func testPostProcessorAddsBOSOnlyWhenAsked() throws {
        let tokenizer = try loadTokenizer(from: Self.fixtures.appendingPathComponent("llama3_style/tokenizer.json"))
        let bos = try XCTUnwrap(tokenizer.tokenToId("<|begin_of_text|>"))
        XCTAssertEqual(tokenizer.encode("hi", addSpecialTokens: true, parseSpecialTokens: true).first, bos)
        XCTAssertNotEqual(tokenizer.encode("hi", addSpecialTokens: false, parseSpecialTokens: true).first, bos)
    }

    func testSpecialTokensAsPlainTextWhenNotParsed() throws {
        let tokenizer = try loadTokenizer(from: Self.fixtures.appendingPathComponent("gpt2_style"))
        let imEnd = try XCTUnwrap(tokenizer.tokenToId("<|im_end|>"))
        XCTAssertEqual(tokenizer.encode("a<|im_end|>"), tokenizer.encode("a") + [imEnd])
        let plain = tokenizer.encode("a<|im_end|>", addSpecialTokens: false, parseSpecialTokens: false)
        XCTAssertFalse(plain.contains(imEnd))
        XCTAssertEqual(tokenizer.decode(plain), "a<|im_end|>")
    }
}
