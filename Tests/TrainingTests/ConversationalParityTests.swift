import Foundation
import XCTest
import Llama
import Preference
import Tokenization
@testable import Training

/// Conversational pairs encode to the ids TRL 1.16's DPOTrainer makes (the model directory's own
/// `chat_template.jinja` rendered by the Templating engine, no EOS appended, the completion cut where
/// the prompt's ids diverge) and score the log-probs transformers computes
/// (Fixtures/generate_conversational_parity.py).
final class ConversationalParityTests: XCTestCase {
    struct Expected: Decodable {
        var prompt_ids: [Int32]
        var chosen_ids: [Int32]
        var rejected_ids: [Int32]
        var prompt_mismatch: Bool
        var chosen_logps: Double
        var rejected_logps: Double
    }

    static var fixture: URL {
        Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent("conversational_parity")
    }

    func check(template: ChatTemplate?, expected name: String) throws {
        let all = try JSONDecoder().decode([String: [Expected]].self,
                                           from: Data(contentsOf: Self.fixture.appendingPathComponent("expected.json")))
        let expected = try XCTUnwrap(all[name])
        let (model, tokenizer) = try TaskScoring.loadModel(Self.fixture.appendingPathComponent("model").path)
        let data = try PreferenceData.load(from: Self.fixture.appendingPathComponent("pairs.jsonl"), tokenizer: tokenizer,
                                           encoding: EncodingOptions(chatTemplate: template))
        XCTAssertEqual(data.pairs.count, expected.count)
        XCTAssertEqual(data.report.promptMismatchCount, expected.filter(\.prompt_mismatch).count)
        for (pair, reference) in zip(data.pairs, expected) {
            XCTAssertEqual(pair.prompt, reference.prompt_ids, "pair \(pair.index) prompt")
            XCTAssertEqual(pair.chosen, reference.chosen_ids, "pair \(pair.index) chosen")
            XCTAssertEqual(pair.rejected, reference.rejected_ids, "pair \(pair.index) rejected")
        }
        let batch = PreferenceBatch(pairs: data.pairs, indices: Array(data.pairs.indices), paddingId: data.paddingId)
        let (chosen, rejected) = batch.sequenceLogps(model.forward(batch.rows, saveForBackward: false))
        var largest = 0.0
        for (index, reference) in expected.enumerated() {
            for (got, want, what) in [(chosen[index], reference.chosen_logps, "chosen"), (rejected[index], reference.rejected_logps, "rejected")] {
                let relative = abs(Double(got) - want) / abs(want)
                largest = max(largest, relative)
                XCTAssertLessThan(relative, 1e-4, "pair \(index) \(what): \(got) vs \(want)")
            }
        }
        print("conversational parity (\(name) template): largest relative log-prob difference \(largest)")
    }

    func testModelTemplateFromChatTemplateJinjaMatchesTRL() throws {
        let tokenizer = try loadTokenizer(from: Self.fixture.appendingPathComponent("model"))
        guard case .modelFile = tokenizer.chatTemplate.origin else { return XCTFail("chat_template.jinja was not used") }
        XCTAssertTrue(tokenizer.chatTemplate.summary.contains("chat_template.jinja"))
        try check(template: nil, expected: "model")
    }

    func testTemplateWhosePromptIdsAreNotAPrefixCutsWhereTRLCuts() throws {
        let file = Self.fixture.appendingPathComponent("mismatch.jinja").path
        try check(template: try ChatTemplate.named(file), expected: "mismatch")
    }
}
