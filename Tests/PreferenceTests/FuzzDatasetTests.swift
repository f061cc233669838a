import Foundation
import TestSupport
import Tokenization
import XCTest
@testable import Preference

/// Fuzzing the dataset readers: random mutations (fixed seeds) of valid JSONL lines of every
/// preference and SFT format, in JSON Lines and JSON array files. Each case must load (and then
/// encode into rows whose ids are in the vocabulary) or throw an error naming the file; never crash,
/// take more than 2 s, or grow the peak resident set by more than 256 MB over a test.
final class FuzzDatasetTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws { directory = try makeFuzzDirectory("dataset") }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: directory) }

    // MARK: - Valid inputs

    static let preferenceLines: [String] = [
        #"{"prompt": "2+2=", "chosen": "4", "rejected": "5"}"#,
        #"{"prompt": [{"role": "user", "content": "Hi"}], "chosen": [{"role": "assistant", "content": "Hello!"}], "rejected": [{"role": "assistant", "content": "Go away."}]}"#,
        #"{"chosen": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}], "rejected": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "No"}]}"#,
        #"{"chosen": "The sky is blue.", "rejected": "The sky is green."}"#,
        #"{"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour"}], "chosen": [{"role": "assistant", "content": "Red"}], "rejected": [{"role": "assistant", "content": ""}]}"#,
    ]

    static let supervisedLines: [String] = [
        #"{"prompt": "2+2=", "completion": "4"}"#,
        #"{"prompt": [{"role": "user", "content": "Hi"}], "completion": [{"role": "assistant", "content": "Hello"}]}"#,
        #"{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}"#,
        #"{"messages": [{"role": "user", "content": "1"}, {"role": "assistant", "content": "2"}, {"role": "user", "content": "3"}, {"role": "assistant", "content": "4"}]}"#,
    ]

    /// Length limits the cases are encoded with: roomy, tight (truncation), and prompt limit = max
    /// length (every pair dropped, so the "nothing left" error is exercised too).
    static let lengthLimits: [(maxLength: Int, maxPromptLength: Int)] = [(1024, 512), (12, 6), (5, 5)]

    // MARK: - Building a case

    /// A file: a few valid lines of `lines` with one mutated line among them (or only the mutated
    /// one), as JSON Lines or, one case in six, as a JSON array.
    func mutatedFile(_ lines: [String], _ mutator: inout Mutator, _ index: Int) throws -> (url: URL, description: String) {
        let documents = lines.map { FuzzJSON.parse(Array($0.utf8))! }
        let base = mutator.below(lines.count)
        let mutated: [UInt8]
        let description: String
        if mutator.chance(2, in: 3) {
            let result = mutator.mutateJSON(documents[base], others: documents)
            (mutated, description) = (result.json.bytes, "line \(base): " + result.description)
        } else {
            let result = mutator.mutateBytes(Array(lines[base].utf8), others: lines.map { Array($0.utf8) })
            (mutated, description) = (result.bytes, "line \(base) bytes: " + result.description)
        }
        var records = (0..<mutator.below(4)).map { _ in Array(mutator.pick(lines).utf8) }
        records.insert(mutated, at: mutator.below(records.count + 1))
        let asArray = mutator.chance(1, in: 6)
        var bytes: [UInt8]
        if asArray {
            bytes = Array("[".utf8) + Array(records.joined(separator: Array(",\n".utf8))) + Array("]".utf8)
        } else {
            bytes = Array(records.joined(separator: mutator.chance(1, in: 8) ? Array("\r\n".utf8) : [0x0A]))
        }
        let url = directory.appendingPathComponent("case\(index).\(asArray ? "json" : "jsonl")")
        try Data(bytes).write(to: url)
        return (url, description)
    }

    /// Checks rows built from encoded sequences: ids inside the vocabulary, targets -1 or an id, lengths consistent.
    func checkRows(_ rows: EncodedRows, vocabularySize: Int, _ run: FuzzRun) {
        let inVocabulary = { (id: Int32) in id >= 0 && Int(id) < vocabularySize }
        if !rows.inputIds.allSatisfy(inVocabulary) { run.fail("an input id is outside the vocabulary") }
        if !rows.targetIds.allSatisfy({ $0 == -1 || inVocabulary($0) }) { run.fail("a target id is outside the vocabulary") }
        if rows.inputIds.count != rows.rows * rows.seqLen || rows.lengths.contains(where: { $0 < 0 || $0 > rows.seqLen }) {
            run.fail("rows are inconsistent: \(rows.rows) rows of \(rows.seqLen), lengths \(rows.lengths)")
        }
    }

    // MARK: - Bugs the fuzzing found (kept as direct regression tests)

    /// Every pair dropped by truncation gave `BatchPlanError.noExamples`, which named no file.
    func testNothingLeftNamesTheFile() throws {
        let url = directory.appendingPathComponent("dropped.jsonl")
        try Data((Self.preferenceLines[0] + "\n" + Self.supervisedLines[0]).utf8).write(to: url)
        let tight = EncodingOptions(maxLength: 3, maxPromptLength: 3)
        XCTAssertThrowsError(try PreferenceData.load(from: url, tokenizer: TokenizerFiles.byteTokenizer(), encoding: tight,
                                                     reading: DatasetReadOptions(skipInvalid: true))) { error in
            XCTAssertTrue("\(error)".contains("dropped.jsonl") && "\(error)".contains("--max-length"), "\(error)")
        }
        let sft = directory.appendingPathComponent("dropped-sft.jsonl")
        try Data(Self.supervisedLines[0].utf8).write(to: sft)
        XCTAssertThrowsError(try SupervisedData.load(from: sft, tokenizer: TokenizerFiles.byteTokenizer(), encoding: tight)) { error in
            XCTAssertTrue("\(error)".contains("dropped-sft.jsonl"), "\(error)")
        }
    }

    /// A conversational completion that does not start with an assistant turn gave
    /// `EncodingError.templateNotPrefix` naming only the example's index, not the file or line.
    func testTemplateMismatchNamesFileAndLine() throws {
        let url = directory.appendingPathComponent("roles.jsonl")
        try Data((Self.preferenceLines[1] + "\n\n" + #"{"prompt": [{"role": "user", "content": "Hi"}], "chosen": [{"role": "user", "content": "x"}], "rejected": [{"role": "assistant", "content": "y"}]}"#).utf8).write(to: url)
        XCTAssertThrowsError(try PreferenceData.load(from: url, tokenizer: TokenizerFiles.byteTokenizer())) { error in
            XCTAssertTrue("\(error)".contains("roles.jsonl") && "\(error)".contains("roles.jsonl:3: "), "\(error)")
        }
        let sft = directory.appendingPathComponent("roles-sft.jsonl")
        try Data(#"{"prompt": [{"role": "user", "content": "Hi"}], "completion": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]}"#.utf8).write(to: sft)
        do {
            _ = try SupervisedData.load(from: sft, tokenizer: TokenizerFiles.byteTokenizer())
        } catch {
            XCTAssertTrue("\(error)".contains("roles-sft.jsonl"), "\(error)")
        }
    }

    // MARK: - Tests

    func testMutatedPreferenceFiles() throws {
        let tokenizer = try TokenizerFiles.byteTokenizer()
        var mutator = Mutator(seed: 0x5EED_D150)
        let run = FuzzRun(kind: "preference JSONL")
        for index in 0..<1_500 {
            let (url, description) = try mutatedFile(Self.preferenceLines, &mutator, index)
            let limits = mutator.pick(Self.lengthLimits)
            let reading = DatasetReadOptions(skipInvalid: mutator.chance(1, in: 2))
            run.run(description, fileName: url.lastPathComponent) {
                let data = try PreferenceData.load(
                    from: url, tokenizer: tokenizer,
                    encoding: EncodingOptions(maxLength: limits.maxLength, maxPromptLength: limits.maxPromptLength),
                    reading: reading)
                checkRows(data.rows(for: Array(data.pairs.indices)), vocabularySize: tokenizer.vocabularySize, run)
                if data.startupLines.isEmpty { run.fail("no startup lines") }
            }
            try? FileManager.default.removeItem(at: url)
        }
        print(run.finish())
        XCTAssertEqual(run.failures, [], run.failures.prefix(20).joined(separator: "\n"))
        XCTAssertGreaterThan(run.loaded, 100, "the mutations should leave many files loadable")
        XCTAssertGreaterThan(run.refused, 100)
    }

    func testMutatedSupervisedFiles() throws {
        let tokenizer = try TokenizerFiles.byteTokenizer()
        var mutator = Mutator(seed: 0x5EED_5F7)
        let run = FuzzRun(kind: "SFT JSONL")
        for index in 0..<1_200 {
            let (url, description) = try mutatedFile(Self.supervisedLines, &mutator, index)
            let limits = mutator.pick(Self.lengthLimits)
            let reading = DatasetReadOptions(skipInvalid: mutator.chance(1, in: 2))
            run.run(description, fileName: url.lastPathComponent) {
                let data = try SupervisedData.load(
                    from: url, tokenizer: tokenizer,
                    encoding: EncodingOptions(maxLength: limits.maxLength, maxPromptLength: limits.maxPromptLength),
                    reading: reading)
                checkRows(data.rows(for: Array(data.sequences.indices)), vocabularySize: tokenizer.vocabularySize, run)
            }
            try? FileManager.default.removeItem(at: url)
        }
        print(run.finish())
        XCTAssertEqual(run.failures, [], run.failures.prefix(20).joined(separator: "\n"))
        XCTAssertGreaterThan(run.loaded, 100)
        XCTAssertGreaterThan(run.refused, 100)
    }

    /// Whole files spliced from preference and SFT lines and mutated as bytes, read by both readers
    /// and by format detection (the reader of the wrong kind must refuse by name, not crash).
    func testMixedFilesThroughEveryReader() throws {
        var mutator = Mutator(seed: 0x5EED_313)
        let run = FuzzRun(kind: "mixed dataset files")
        let lines = Self.preferenceLines + Self.supervisedLines
        let files = (0..<6).map { _ in Array((0..<4).map { _ in mutator.pick(lines) }.joined(separator: "\n").utf8) }
        for index in 0..<1_000 {
            let (bytes, description) = mutator.mutateBytes(mutator.pick(files), others: files)
            let url = directory.appendingPathComponent("mixed\(index).jsonl")
            try Data(bytes).write(to: url)
            let reading = DatasetReadOptions(skipInvalid: mutator.chance(1, in: 2))
            run.run(description, fileName: url.lastPathComponent) { _ = try DatasetReader.readPreferences(from: url, options: reading) }
            run.run(description, fileName: url.lastPathComponent) { _ = try DatasetReader.readSupervised(from: url, options: reading) }
            run.run(description, fileName: url.lastPathComponent) { _ = try DatasetReader.detectFormat(of: url) }
            try? FileManager.default.removeItem(at: url)
        }
        print(run.finish())
        XCTAssertEqual(run.failures, [], run.failures.prefix(20).joined(separator: "\n"))
        XCTAssertGreaterThan(run.loaded, 100)
        XCTAssertGreaterThan(run.refused, 100)
    }
}
