import Foundation
import XCTest
@testable import Preference
import Tokenization

/// The encoder agrees with TRL's DPO dataset preparation (TRLFixture.swift, written by
/// Fixtures/make_trl_fixture.py) on standard, conversational and implicit-prompt examples with the byte tokenizer.
/// (Where TRL and DESIGN.md section 3 differ, DESIGN wins: TRL adds the post-processor's BOS to standard
/// prompts and tokenizes prompt+completion as one text; with the byte tokenizer neither shows.)
final class TRLAgreementTests: XCTestCase {
    func testPromptChosenRejectedIdsMatchTRL() throws {
        let fixture = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(trlFixtureJSON.utf8)) as? [String: Any])
        let cases = try XCTUnwrap(fixture["cases"] as? [[String: Any]])
        XCTAssertEqual(cases.count, 6)
        let encoder = try PreferenceEncoder(tokenizer: TokenizerFiles.byteTokenizer())
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("trl-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        for (number, testCase) in cases.enumerated() {
            let url = directory.appendingPathComponent("\(number).jsonl")
            try JSONSerialization.data(withJSONObject: try XCTUnwrap(testCase["example"])).write(to: url)
            let dataset = try DatasetReader.readPreferences(from: url)
            XCTAssertEqual(dataset.format.rawValue, testCase["format"] as? String)
            guard case .encoded(let pair) = try encoder.encode(dataset.examples[0], index: number).outcome else {
                return XCTFail("case \(number) dropped")
            }
            XCTAssertEqual(pair.prompt.map(Int.init), testCase["prompt_ids"] as? [Int], "case \(number) prompt")
            XCTAssertEqual(pair.chosen.map(Int.init), testCase["chosen_ids"] as? [Int], "case \(number) chosen")
            XCTAssertEqual(pair.rejected.map(Int.init), testCase["rejected_ids"] as? [Int], "case \(number) rejected")
        }
    }
}
