import Foundation
import XCTest
@testable import Tokenization

/// Loading errors: missing files, and every unsupported component refused by name.
final class TokenizerLoadingTests: XCTestCase {
    static var fixtures: URL { Bundle.module.url(forResource: "Fixtures", withExtension: nil)! }

    func document() throws -> [String: Any] {
        let data = try Data(contentsOf: Self.fixtures.appendingPathComponent("gpt2_style/tokenizer.json"))
        return try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    func load(_ document: [String: Any]) throws -> BPETokenizer {
        try BPETokenizer(tokenizerJSON: JSONSerialization.data(withJSONObject: document), tokenizerConfigJSON: nil,
                         specialTokensMapJSON: nil, sourcePath: "edited.json")
    }

    func assertRefused(_ edit: (inout [String: Any]) -> Void, naming name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        var edited = try document()
        edit(&edited)
        XCTAssertThrowsError(try load(edited), file: file, line: line) { error in
            XCTAssertTrue("\(error)".contains(name), "\(error) should name \(name)", file: file, line: line)
            XCTAssertTrue("\(error)".contains("edited.json"), file: file, line: line)
        }
    }

    func testUnsupportedComponentsAreRefusedByName() throws {
        try assertRefused({ $0["normalizer"] = ["type": "NFKD"] }, naming: "NFKD")
        try assertRefused({ $0["normalizer"] = ["type": "Lowercase"] }, naming: "Lowercase")
        try assertRefused({ $0["pre_tokenizer"] = ["type": "Metaspace", "replacement": "▁", "prepend_scheme": "sometimes"] },
                          naming: "sometimes")
        try assertRefused({ $0["pre_tokenizer"] = ["type": "Sequence", "pretokenizers": [
            ["type": "ByteLevel"], ["type": "Metaspace", "replacement": "▁"]]] }, naming: "Metaspace")
        try assertRefused({ $0["normalizer"] = ["type": "Replace", "pattern": ["Regex": " +"], "content": " "] }, naming: "Regex")
        try assertRefused({ $0["pre_tokenizer"] = ["type": "Whitespace"] }, naming: "Whitespace")
        try assertRefused({ $0["decoder"] = ["type": "WordPiece"] }, naming: "WordPiece")
        try assertRefused({ $0["post_processor"] = ["type": "SomethingNew"] }, naming: "SomethingNew")
        try assertRefused({
            var model = $0["model"] as! [String: Any]
            model["type"] = "Unigram"
            $0["model"] = model
        }, naming: "Unigram")
        try assertRefused({
            var model = $0["model"] as! [String: Any]
            model["dropout"] = 0.1
            $0["model"] = model
        }, naming: "dropout")
        try assertRefused({ $0["pre_tokenizer"] = ["type": "Split", "pattern": ["Regex": "\\s"], "behavior": "MergedWithPrevious"] },
                          naming: "MergedWithPrevious")
    }

    func testMissingFilesAndBadJSON() throws {
        XCTAssertThrowsError(try loadTokenizer(from: URL(fileURLWithPath: "/nonexistent/tokenizer.json"))) { error in
            XCTAssertEqual(error as? TokenizerError, .fileNotFound(path: "/nonexistent/tokenizer.json"))
        }
        let empty = FileManager.default.temporaryDirectory.appendingPathComponent("empty-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: empty) }
        XCTAssertThrowsError(try loadTokenizer(from: empty))
        XCTAssertThrowsError(try BPETokenizer(tokenizerJSON: Data("[1,".utf8), tokenizerConfigJSON: nil,
                                              specialTokensMapJSON: nil, sourcePath: "bad.json")) { error in
            XCTAssertTrue("\(error)".contains("bad.json"))
        }
        var document = try document()
        var model = document["model"] as! [String: Any]
        model["merges"] = ["Ġ zzzz"]
        document["model"] = model
        XCTAssertThrowsError(try load(document)) { XCTAssertTrue("\($0)".contains("merge 0")) }
    }

    func testGenericRegexFallbackAgreesWithScanners() throws {
        // The NSRegularExpression path is the oracle of the hand-written scanners on ordinary text.
        let texts = ["Hello, world! It's 2024: 12345 apples\n\n  and  'LL  ", "a\tb \u{3000}c\n \n d", "x's 'RE 99999 ?!? \r\n"]
        for (source, scanner) in [(PreTokenizationPattern.gpt2Source, PreTokenizationPattern.gpt2),
                                  (PreTokenizationPattern.llama3Source, .llama3(maxDigits: 3)),
                                  (PreTokenizationPattern.qwen2Source, .llama3(maxDigits: 1))] {
            let generic = PreTokenizationPattern.other(try NSRegularExpression(pattern: source))
            for text in texts {
                let scalars = Array(text.unicodeScalars)
                let classes = scalars.map(ScalarClass.of)
                XCTAssertEqual(scanner.pieceEnds(scalars, classes), generic.pieceEnds(scalars, classes), "\(source) on \(text.debugDescription)")
            }
        }
    }
}
