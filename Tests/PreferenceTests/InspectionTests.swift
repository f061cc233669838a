import Foundation
import XCTest
@testable import Preference
import Tokenization

/// What `dpo inspect-data` prints: tokens with ids and mask flags, drop reasons, whole-file summaries.
final class InspectionTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("inspect-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: directory) }

    func testOnePairTokenByToken() throws {
        let url = directory.appendingPathComponent("p.jsonl")
        try Data(#"{"prompt": "1+2=", "chosen": "3", "rejected": "4"}"#.utf8).write(to: url)
        let lines = try ExampleInspection.describe(file: url, index: 0, tokenizer: TokenizerFiles.byteTokenizer(),
                                                   options: EncodingOptions(), readOptions: DatasetReadOptions())
        XCTAssertTrue(lines.contains("format: standard"))
        XCTAssertTrue(lines.contains("chosen: 6 tokens, 2 in the completion mask"))
        XCTAssertTrue(lines.contains("rejected: 6 tokens, 2 in the completion mask"))
        XCTAssertTrue(lines.contains { $0.hasPrefix("    3     61    .") && $0.hasSuffix("\"=\"") })
        XCTAssertTrue(lines.contains { $0.hasPrefix("    4     51    C") })
        XCTAssertTrue(lines.contains { $0.hasPrefix("    5    258    C") && $0.hasSuffix("\"<|im_end|>\"") })
        XCTAssertThrowsError(try ExampleInspection.describe(file: url, index: 1, tokenizer: TokenizerFiles.byteTokenizer(),
                                                            options: EncodingOptions(), readOptions: DatasetReadOptions()))
        let dropped = try ExampleInspection.describe(file: url, index: 0, tokenizer: TokenizerFiles.byteTokenizer(),
                                                     options: EncodingOptions(maxLength: 3, maxPromptLength: 3),
                                                     readOptions: DatasetReadOptions())
        XCTAssertTrue(dropped.contains { $0.hasPrefix("DROPPED: chosen completion empty after truncation") })
    }

    func testSupervisedExampleAndSummary() throws {
        let url = directory.appendingPathComponent("s.jsonl")
        try DatasetWriter.jsonLines(DemoTask.arithmetic.supervisedExamples(n: 9, seed: 0, wrongShare: 0)).write(to: url)
        let tokenizer = try TokenizerFiles.byteTokenizer()
        let lines = try ExampleInspection.describe(file: url, index: 2, tokenizer: tokenizer, options: EncodingOptions(),
                                                   readOptions: DatasetReadOptions())
        XCTAssertTrue(lines.contains { $0.hasPrefix("sequence: ") })
        let summary = try DatasetSummary.describe(file: url, tokenizer: tokenizer, options: EncodingOptions(),
                                                  readOptions: DatasetReadOptions(), batchSize: 4)
        XCTAssertTrue(summary.contains("sequences kept: 9"))
        XCTAssertTrue(summary.contains { $0.contains("batching one epoch (3 batches of 4)") })
    }
}
