import Foundation
import XCTest
@testable import Preference
import Tokenization

/// Reading every format, and every kind of bad input with its file, line and key.
final class DatasetReaderTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("reader-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: directory) }

    func file(_ name: String, _ text: String) throws -> URL {
        try file(name, Data(text.utf8))
    }

    func file(_ name: String, _ data: Data) throws -> URL {
        let url = directory.appendingPathComponent(name)
        try data.write(to: url)
        return url
    }

    // MARK: - Formats

    func testStandardJSONLines() throws {
        let url = try file("standard.jsonl", """
            {"prompt": "2+2=", "chosen": "4", "rejected": "5"}

            {"prompt": "1+1=", "chosen": "2", "rejected": "3"}
            """)
        let dataset = try DatasetReader.readPreferences(from: url)
        XCTAssertEqual(dataset.format, .standard)
        XCTAssertEqual(dataset.examples, [.standard(prompt: "2+2=", chosen: "4", rejected: "5"),
                                          .standard(prompt: "1+1=", chosen: "2", rejected: "3")])
        XCTAssertEqual(dataset.sourcePositions, [1, 3])
    }

    func testConversationalAndJSONArray() throws {
        let url = try file("conversational.json", """
            [{"prompt": [{"role": "user", "content": "hi"}], "chosen": [{"role": "assistant", "content": "hello"}],
              "rejected": [{"role": "assistant", "content": "go away"}]}]
            """)
        let dataset = try DatasetReader.readPreferences(from: url)
        XCTAssertEqual(dataset.format, .conversational)
        XCTAssertEqual(dataset.examples, [.conversational(prompt: [ChatMessage(role: "user", content: "hi")],
                                                          chosen: [ChatMessage(role: "assistant", content: "hello")],
                                                          rejected: [ChatMessage(role: "assistant", content: "go away")])])
    }

    func testImplicitPromptMiniMindStyle() throws {
        let url = try file("dpo.jsonl", """
            {"chosen": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "good"}], "rejected": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "bad"}]}
            """)
        let dataset = try DatasetReader.readPreferences(from: url)
        XCTAssertEqual(dataset.format, .implicitPrompt)
        XCTAssertEqual(dataset.examples, [.conversational(prompt: [ChatMessage(role: "user", content: "Q")],
                                                          chosen: [ChatMessage(role: "assistant", content: "good")],
                                                          rejected: [ChatMessage(role: "assistant", content: "bad")])])
    }

    func testStandardImplicitPromptKeepsTheSpaceWithTheCompletions() throws {
        let url = try file("implicit.jsonl", #"{"chosen": "The sky is blue", "rejected": "The sky is green"}"#)
        let dataset = try DatasetReader.readPreferences(from: url)
        XCTAssertEqual(dataset.format, .standardImplicitPrompt)
        XCTAssertEqual(dataset.examples, [.standard(prompt: "The sky is", chosen: " blue", rejected: " green")])
    }

    func testConfigurableKeys() throws {
        let url = try file("keys.jsonl", #"{"question": "q", "good": "a", "bad": "b"}"#)
        let options = DatasetReadOptions(keys: DatasetKeys(prompt: "question", chosen: "good", rejected: "bad"))
        XCTAssertEqual(try DatasetReader.readPreferences(from: url, options: options).examples,
                       [.standard(prompt: "q", chosen: "a", rejected: "b")])
        XCTAssertThrowsError(try DatasetReader.readPreferences(from: url))
    }

    func testSupervisedFormats() throws {
        let plain = try file("sft.jsonl", #"{"prompt": "1+1=", "completion": "2"}"#)
        let plainSet = try DatasetReader.readSupervised(from: plain)
        XCTAssertEqual(plainSet.format, .promptCompletion)
        XCTAssertEqual(plainSet.examples, [.promptCompletion(prompt: "1+1=", completion: "2")])
        let messages = try file("messages.jsonl", #"{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}"#)
        let messageSet = try DatasetReader.readSupervised(from: messages)
        XCTAssertEqual(messageSet.format, .messages)
        XCTAssertEqual(try DatasetReader.detectFormat(of: messages), .messages)
        let conversational = try file("conv.jsonl", #"{"prompt": [{"role": "user", "content": "a"}], "completion": [{"role": "assistant", "content": "b"}]}"#)
        XCTAssertEqual(try DatasetReader.readSupervised(from: conversational).format, .conversationalPromptCompletion)
        // The wrong kind of data for the stage is named.
        XCTAssertThrowsError(try DatasetReader.readPreferences(from: plain)) { XCTAssertTrue("\($0)".contains("supervised")) }
        let prefs = try file("prefs.jsonl", #"{"prompt": "a", "chosen": "b", "rejected": "c"}"#)
        XCTAssertThrowsError(try DatasetReader.readSupervised(from: prefs)) { XCTAssertTrue("\($0)".contains("preference")) }
    }

    // MARK: - Bad input

    func assertError(_ url: URL, line: Int?, key: String?, containing problem: String,
                     file: StaticString = #filePath, lineNumber: UInt = #line) {
        XCTAssertThrowsError(try DatasetReader.readPreferences(from: url), file: file, line: lineNumber) { error in
            guard let error = error as? DataError else { return XCTFail("\(error) is not a DataError", file: file, line: lineNumber) }
            XCTAssertEqual(error.file, url.path, file: file, line: lineNumber)
            XCTAssertEqual(error.location, line.map(DataError.Location.line) ?? .file, file: file, line: lineNumber)
            XCTAssertEqual(error.key, key, file: file, line: lineNumber)
            XCTAssertTrue(error.problem.contains(problem), "\(error.problem) should contain \(problem)", file: file, line: lineNumber)
            XCTAssertTrue(error.description.contains(url.path), file: file, line: lineNumber)
            if let line { XCTAssertTrue(error.description.contains(":\(line):"), error.description, file: file, line: lineNumber) }
        }
    }

    let good = #"{"prompt": "p", "chosen": "c", "rejected": "r"}"#

    func testMalformedJSONLine() throws {
        assertError(try file("a.jsonl", good + "\n" + #"{"prompt": "p", "chosen": "#), line: 2, key: nil, containing: "malformed JSON")
    }

    func testMissingKey() throws {
        assertError(try file("b.jsonl", good + "\n" + #"{"prompt": "p", "chosen": "c"}"#), line: 2, key: "rejected", containing: "missing")
    }

    func testWrongType() throws {
        assertError(try file("c.jsonl", good + "\n" + #"{"prompt": "p", "chosen": 5, "rejected": "r"}"#),
                    line: 2, key: "chosen", containing: "wrong type")
        assertError(try file("c2.jsonl", good + "\n" + #"[1, 2]"#), line: 2, key: nil, containing: "not a JSON object")
    }

    func testEmptyString() throws {
        assertError(try file("d.jsonl", good + "\n" + #"{"prompt": "p", "chosen": "", "rejected": "r"}"#),
                    line: 2, key: "chosen", containing: "empty string")
    }

    func testInvalidUTF8() throws {
        var data = Data((good + "\n").utf8)
        data += Data([0x7B, 0x22, 0x70, 0xFF, 0xFE, 0x22, 0x7D, 0x0A])
        assertError(try file("e.jsonl", data), line: 2, key: nil, containing: "invalid UTF-8")
    }

    func testEmptyFile() throws {
        assertError(try file("f.jsonl", ""), line: nil, key: nil, containing: "empty")
        assertError(try file("g.jsonl", "\n  \n"), line: nil, key: nil, containing: "empty")
    }

    func testMissingFile() {
        assertError(directory.appendingPathComponent("nope.jsonl"), line: nil, key: nil, containing: "does not exist")
    }

    func testSkipInvalidSkipsAndCounts() throws {
        let url = try file("mixed.jsonl", [good, "{oops", #"{"prompt": "p", "chosen": "", "rejected": "r"}"#, good,
                                           #"{"prompt": "p", "chosen": "c"}"#].joined(separator: "\n"))
        let dataset = try DatasetReader.readPreferences(from: url, options: DatasetReadOptions(skipInvalid: true))
        XCTAssertEqual(dataset.examples.count, 2)
        XCTAssertEqual(dataset.sourcePositions, [1, 4])
        XCTAssertEqual(dataset.skipped.map(\.location), [.line(2), .line(3), .line(5)])
        // Nothing valid at all is still an error.
        let bad = try file("allbad.jsonl", "{oops\n[")
        XCTAssertThrowsError(try DatasetReader.readPreferences(from: bad, options: DatasetReadOptions(skipInvalid: true)))
    }

    func testBadArrayElementNamesTheElement() throws {
        let url = try file("array.json", "[" + good + #", {"prompt": "p", "chosen": "c", "rejected": 3}]"#)
        XCTAssertThrowsError(try DatasetReader.readPreferences(from: url)) { error in
            XCTAssertEqual((error as? DataError)?.location, .element(1))
            XCTAssertEqual((error as? DataError)?.key, "rejected")
        }
        let broken = try file("broken.json", "[" + good)
        XCTAssertThrowsError(try DatasetReader.readPreferences(from: broken)) { XCTAssertTrue("\($0)".contains("malformed JSON array")) }
    }

    func testBadMessages() throws {
        let url = try file("msgs.jsonl", #"{"prompt": [{"role": "user"}], "chosen": [{"role": "assistant", "content": "a"}], "rejected": [{"role": "assistant", "content": "b"}]}"#)
        XCTAssertThrowsError(try DatasetReader.readPreferences(from: url)) { XCTAssertEqual(($0 as? DataError)?.key, "prompt[0].content") }
        let same = try file("same.jsonl", #"{"chosen": [{"role": "user", "content": "a"}], "rejected": [{"role": "user", "content": "a"}]}"#)
        XCTAssertThrowsError(try DatasetReader.readPreferences(from: same)) { XCTAssertTrue("\($0)".contains("share")) }
    }
}
