import Foundation
import TestSupport
import XCTest
@testable import Tokenization

/// Fuzzing `loadTokenizer(from:)`: random mutations (fixed seeds) of the byte tokenizer and the BPE
/// fixtures (`tokenizer.json` and `tokenizer_config.json`). Each case must load or throw an error
/// naming the file; a tokenizer that loads must encode and decode a few strings without crashing,
/// and every id it produces must be inside its vocabulary (an id outside it would index past the
/// model's embedding). No case may take more than 2 s or grow the peak resident set by more than 256 MB.
final class FuzzTokenizerTests: XCTestCase {
    static var fixtures: URL { Bundle.module.url(forResource: "Fixtures", withExtension: nil)! }
    static let fixtureNames = ["byte", "gpt2_style", "llama3_style", "qwen2_style"]
    static let tokenizerFileNames = ["tokenizer.json", "tokenizer_config.json"]

    /// Texts each loaded tokenizer encodes: ASCII, special tokens, combining marks (NFC), emoji,
    /// numbers, whitespace runs, contractions, an invalid-looking escape, a long run.
    static let probeTexts: [String] = [
        "Hello, world! It's 2024.", "<|im_start|>user\nHi<|im_end|>\n", "e\u{301}t\u{E9} 😀👩‍👩‍👧 \u{10FFFF}",
        "   \n\n\t  x  ", "I'LL we've 12345678 ٣٤", "<|endoftext|><|eot_id|><|begin_of_text|>", "\u{0}\u{1}\u{7F}",
        String(repeating: "ab ", count: 300),
    ]

    var directory: URL!

    override func setUpWithError() throws { directory = try makeFuzzDirectory("tokenizer") }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: directory) }

    /// The valid files of each fixture: name -> (file name -> bytes).
    func fixtureFiles() throws -> [(name: String, files: [String: [UInt8]])] {
        try Self.fixtureNames.map { name in
            var files: [String: [UInt8]] = [:]
            for fileName in Self.tokenizerFileNames {
                let url = Self.fixtures.appendingPathComponent(name).appendingPathComponent(fileName)
                if FileManager.default.fileExists(atPath: url.path) { files[fileName] = try [UInt8](Data(contentsOf: url)) }
            }
            return (name, files)
        }
    }

    /// Exercises a loaded tokenizer and reports what is wrong with it.
    func exercise(_ tokenizer: any Tokenizer, _ run: FuzzRun) {
        let size = tokenizer.vocabularySize
        let inVocabulary = { (id: Int32) in id >= 0 && Int(id) < size }
        for text in Self.probeTexts {
            for (addSpecial, parseSpecial) in [(false, true), (true, true), (true, false)] {
                let ids = tokenizer.encode(text, addSpecialTokens: addSpecial, parseSpecialTokens: parseSpecial)
                if let bad = ids.first(where: { !inVocabulary($0) }) {
                    run.fail("encoding \(text.prefix(30).debugDescription) gave id \(bad) outside 0..<\(size)")
                }
                _ = tokenizer.decode(ids, skipSpecialTokens: false)
                _ = tokenizer.decode(ids, skipSpecialTokens: true)
            }
        }
        _ = tokenizer.decode([-1, Int32.max, Int32.min, Int32(truncatingIfNeeded: size), 0, 1, 2], skipSpecialTokens: false)
        for id: Int32 in [-1, Int32.max, 0, Int32(truncatingIfNeeded: size)] {
            _ = tokenizer.idToToken(id)
            _ = tokenizer.isSpecialToken(id)
        }
        for special in [tokenizer.bosTokenId, tokenizer.eosTokenId, tokenizer.padTokenId].compactMap({ $0 }) where !inVocabulary(special) {
            run.fail("special token id \(special) outside 0..<\(size)")
        }
        if !inVocabulary(tokenizer.paddingId) && size > 0 { run.fail("padding id \(tokenizer.paddingId) outside 0..<\(size)") }
        _ = tokenizer.tokenToId("<|im_end|>")
    }

    /// Token ids at the edges in every place a tokenizer.json gives one: added tokens, vocabulary
    /// entries, TemplateProcessing and RobertaProcessing post-processors. Found by reading the loader
    /// while writing the fuzzer (random mutations rarely land on these exact values): a negative added
    /// token id indexed before the id table (the test process crashed with SIGSEGV), an id past Int32
    /// was narrowed unchecked, a vocabulary id of 2147483646 allocated a 32 GB id table, and a
    /// post-processor id outside the vocabulary was emitted by `encode` (the model's embedding lookup
    /// would read past its table).
    func testTokenIdsAtTheEdges() throws {
        let edges: [Int] = [-1, -2_147_483_648, 2_147_483_646, 2_147_483_647, 2_147_483_648, 1_000_000_000_000_000, 5_000, 599, 0]
        let run = FuzzRun(kind: "token ids at the edges")
        for name in ["byte", "gpt2_style", "llama3_style"] {
            let original = try Data(contentsOf: Self.fixtures.appendingPathComponent(name).appendingPathComponent("tokenizer.json"))
            let document = try XCTUnwrap(JSONSerialization.jsonObject(with: original) as? [String: Any])
            var edits: [(String, ([String: Any], Int) -> [String: Any])] = []
            edits.append(("added token id", { document, id in
                var document = document
                var added = document["added_tokens"] as? [[String: Any]] ?? []
                if added.isEmpty { added = [["content": "<x>", "special": true]] }
                added[0]["id"] = id
                document["added_tokens"] = added
                return document
            }))
            edits.append(("vocabulary id", { document, id in
                var document = document
                var model = document["model"] as! [String: Any]
                var vocabulary = model["vocab"] as! [String: Any]
                vocabulary[vocabulary.keys.sorted()[0]] = id
                model["vocab"] = vocabulary
                document["model"] = model
                return document
            }))
            edits.append(("TemplateProcessing id", { document, id in
                var document = document
                document["post_processor"] = [
                    "type": "TemplateProcessing",
                    "single": [["SpecialToken": ["id": "<s>", "type_id": 0]], ["Sequence": ["id": "A", "type_id": 0]]],
                    "special_tokens": ["<s>": ["id": "<s>", "ids": [id], "tokens": ["<s>"]]],
                ] as [String: Any]
                return document
            }))
            edits.append(("RobertaProcessing id", { document, id in
                var document = document
                document["post_processor"] = ["type": "RobertaProcessing", "cls": ["<s>", id], "sep": ["</s>", 1]] as [String: Any]
                return document
            }))
            for (what, edit) in edits {
                for id in edges {
                    let caseDirectory = directory.appendingPathComponent("\(name)-\(what.replacingOccurrences(of: " ", with: "-"))\(id)")
                    try FileManager.default.createDirectory(at: caseDirectory, withIntermediateDirectories: true)
                    try JSONSerialization.data(withJSONObject: edit(document, id)).write(to: caseDirectory.appendingPathComponent("tokenizer.json"))
                    run.run("\(name): \(what) \(id)", fileName: caseDirectory.lastPathComponent) {
                        exercise(try loadTokenizer(from: caseDirectory), run)
                    }
                    try? FileManager.default.removeItem(at: caseDirectory)
                }
            }
        }
        print(run.finish())
        XCTAssertEqual(run.failures, [], run.failures.prefix(20).joined(separator: "\n"))
        XCTAssertGreaterThan(run.loaded, 10)
        XCTAssertGreaterThan(run.refused, 40)
    }

    func testMutatedTokenizerFiles() throws {
        let fixtures = try fixtureFiles()
        var documents: [String: FuzzJSON] = [:]
        for fixture in fixtures {
            for (fileName, bytes) in fixture.files { documents[fixture.name + "/" + fileName] = FuzzJSON.parse(bytes) }
        }
        var mutator = Mutator(seed: 0x5EED_70C)
        let run = FuzzRun(kind: "tokenizer.json / tokenizer_config.json")
        for index in 0..<1_500 {
            let fixture = mutator.pick(fixtures)
            // Mostly tokenizer.json; one case in five mutates tokenizer_config.json when there is one.
            let fileName = fixture.files["tokenizer_config.json"] != nil && mutator.chance(1, in: 5)
                ? "tokenizer_config.json" : "tokenizer.json"
            let original = fixture.files[fileName]!
            let others = fixtures.compactMap { $0.files[fileName] }
            let mutated: [UInt8]
            var description: String
            if mutator.chance(2, in: 3), let document = documents[fixture.name + "/" + fileName] {
                let result = mutator.mutateJSON(document, others: fixtures.compactMap { documents[$0.name + "/" + fileName] })
                (mutated, description) = (result.json.bytes, result.description)
            } else {
                let result = mutator.mutateBytes(original, others: others)
                (mutated, description) = (result.bytes, "bytes: " + result.description)
            }
            description = "\(fixture.name)/\(fileName): " + description

            let caseDirectory = directory.appendingPathComponent("case\(index)")
            try FileManager.default.createDirectory(at: caseDirectory, withIntermediateDirectories: true)
            for (name, bytes) in fixture.files {
                try Data(name == fileName ? mutated : bytes).write(to: caseDirectory.appendingPathComponent(name))
            }
            run.run(description, fileName: caseDirectory.lastPathComponent) {
                let tokenizer = try loadTokenizer(from: caseDirectory)
                exercise(tokenizer, run)
            }
            try? FileManager.default.removeItem(at: caseDirectory)
        }
        print(run.finish())
        XCTAssertEqual(run.failures, [], run.failures.prefix(20).joined(separator: "\n"))
        XCTAssertGreaterThan(run.loaded, 100, "the mutations should leave many tokenizers loadable")
        XCTAssertGreaterThan(run.refused, 100)
    }
}
