import Foundation
import XCTest
@testable import Tokenization

/// The tokenizer components of the hub's model families against Hugging Face `tokenizers`, id for id
/// and string for string, on the tokenizers and strings of Fixtures/make_family_tokenizers.py
/// (digit runs, Chinese, emoji, runs of spaces, special tokens in text, characters only byte
/// fallback can spell).
final class FamilyTokenizerTests: XCTestCase {
    static var fixtures: URL { Bundle.module.url(forResource: "Fixtures", withExtension: nil)! }

    func check(_ name: String) throws {
        let golden = try JSONDecoder().decode(GoldenTokenizerTests.Golden.self,
                                              from: Data(contentsOf: Self.fixtures.appendingPathComponent("golden_families.json")))
        let tokenizer = try loadTokenizer(from: Self.fixtures.appendingPathComponent(name))
        let cases = try XCTUnwrap(golden.tokenizers[name])
        XCTAssertEqual(cases.count, golden.strings.count)
        var mismatches = 0
        for (text, expected) in zip(golden.strings, cases) {
            let ids = tokenizer.encode(text, addSpecialTokens: false, parseSpecialTokens: true)
            let withSpecial = tokenizer.encode(text, addSpecialTokens: true, parseSpecialTokens: true)
            let decoded = tokenizer.decode(expected.ids, skipSpecialTokens: false)
            let decodedSkipping = tokenizer.decode(expected.ids, skipSpecialTokens: true)
            if ids != expected.ids || withSpecial != expected.ids_with_special_tokens || decoded != expected.decoded
                || decodedSkipping != expected.decoded_skipping_special {
                mismatches += 1
            }
            XCTAssertEqual(ids, expected.ids, "\(name): ids of \(text.debugDescription)")
            XCTAssertEqual(withSpecial, expected.ids_with_special_tokens, "\(name): ids with special tokens of \(text.debugDescription)")
            XCTAssertEqual(decoded, expected.decoded, "\(name): decode of \(text.debugDescription)")
            XCTAssertEqual(decodedSkipping, expected.decoded_skipping_special, "\(name): decode skipping special of \(text.debugDescription)")
        }
        print("\(name): \(cases.count - mismatches)/\(cases.count) strings identical to tokenizers")
    }

    func testSmolLM2StyleIndividualDigitsThenByteLevel() throws { try check("smollm2_style") }

    func testDigitRunsWithNFKC() throws { try check("digits_nfkc_style") }

    func testLlama2StyleSentencepieceByteFallback() throws { try check("llama2_style") }

    func testMetaspaceFirstWithoutSplit() throws { try check("metaspace_style") }

    func testMetaspaceAlwaysWithSplit() throws { try check("metaspace_split_style") }

    /// The golden strings do reach the new paths: byte-fallback pieces and digit splitting.
    func testGoldenStringsExerciseByteFallbackAndDigits() throws {
        let llama2 = try loadTokenizer(from: Self.fixtures.appendingPathComponent("llama2_style"))
        let ids = llama2.encode("你好 😀", addSpecialTokens: false, parseSpecialTokens: true)
        let pieces = ids.compactMap { llama2.idToToken($0) }
        XCTAssertTrue(pieces.contains { $0.hasPrefix("<0x") && $0.count == 6 }, "\(pieces)")
        XCTAssertEqual(llama2.decode(ids), "你好 😀")
        XCTAssertEqual(llama2.encode("hi", addSpecialTokens: true, parseSpecialTokens: true).first, llama2.bosTokenId,
                       "the post-processor adds <s>")
        let smol = try loadTokenizer(from: Self.fixtures.appendingPathComponent("smollm2_style"))
        let digits = smol.encode("2024", addSpecialTokens: false, parseSpecialTokens: true).compactMap { smol.idToToken($0) }
        XCTAssertEqual(digits, ["2", "0", "2", "4"], "individual digits")
    }

    /// The post-processor decides the special tokens: tokenizer_config.json's add_bos_token /
    /// add_eos_token flags do not override it, as with transformers 5.24 (its AutoTokenizer on this
    /// fixture with add_bos_token false, add_eos_token true gives [1, 322, 298, 299] for "hi").
    func testPostProcessorDecidesBOSWhateverTheFlagsSay() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("bos-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try FileManager.default.copyItem(at: Self.fixtures.appendingPathComponent("llama2_style/tokenizer.json"),
                                         to: directory.appendingPathComponent("tokenizer.json"))
        try Data(#"{"add_bos_token": false, "add_eos_token": true, "bos_token": "<s>", "eos_token": "</s>"}"#.utf8)
            .write(to: directory.appendingPathComponent("tokenizer_config.json"))
        let tokenizer = try loadTokenizer(from: directory)
        XCTAssertEqual(tokenizer.encode("hi", addSpecialTokens: true, parseSpecialTokens: true), [1, 322, 298, 299])
        XCTAssertEqual(tokenizer.encode("hi", addSpecialTokens: false, parseSpecialTokens: true), [322, 298, 299])
    }
}
