import Foundation
import XCTest
import Llama
import Preference
import Tokenization
@testable import Training

/// Every checkpoint and `final/` carries the chat template the run used, as `chat_template.jinja`
/// (where transformers 5 looks first), so transformers renders prompts as training did.
final class ChatTemplateCheckpointTests: XCTestCase {
    static let modelTemplate = "{%- if messages[0]['role'] != 'system' %}{{- '<|im_start|>system\\nBe helpful.<|im_end|>\\n' }}{%- endif %}"
        + "{%- for message in messages %}{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}{%- endfor %}"
        + "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"

    func conversationalData(_ sandbox: TrainerSandbox) throws -> URL {
        let url = sandbox.root.appendingPathComponent("chat.jsonl")
        var text = ""
        for (question, good, bad) in TrainerSandbox.arithmetic {
            text += #"{"prompt": [{"role": "user", "content": "\#(question)"}], "chosen": [{"role": "assistant", "content": "\#(good)"}], "rejected": [{"role": "assistant", "content": "\#(bad)"}]}"# + "\n"
        }
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    func testFinalCarriesTheModelsChatTemplateJinja() throws {
        let sandbox = try TrainerSandbox()
        try Self.modelTemplate.write(to: sandbox.modelDirectory.appendingPathComponent("chat_template.jinja"), atomically: true, encoding: .utf8)
        var p = sandbox.parameters(data: try conversationalData(sandbox))
        p.maxSteps = 3
        p.saveEvery = 2
        _ = try sandbox.train(p)
        let names = try FileManager.default.contentsOfDirectory(atPath: p.outputDirectory)
        XCTAssertTrue(names.contains("checkpoint-2"), "\(names)")
        for name in ["checkpoint-2", "final"] {
            let saved = URL(fileURLWithPath: p.outputDirectory).appendingPathComponent(name)
            XCTAssertEqual(try String(contentsOf: saved.appendingPathComponent("chat_template.jinja"), encoding: .utf8), Self.modelTemplate)
            XCTAssertEqual(try loadTokenizer(from: saved).chatTemplate.source, Self.modelTemplate)
        }
    }

    func testExplicitChatTemplateWinsAndIsSaved() throws {
        let sandbox = try TrainerSandbox()
        try Self.modelTemplate.write(to: sandbox.modelDirectory.appendingPathComponent("chat_template.jinja"), atomically: true, encoding: .utf8)
        var p = sandbox.parameters(data: try conversationalData(sandbox))
        p.maxSteps = 1
        p.chatTemplate = .chatml
        _ = try sandbox.train(p)
        let final = URL(fileURLWithPath: p.outputDirectory).appendingPathComponent("final")
        XCTAssertEqual(try String(contentsOf: final.appendingPathComponent("chat_template.jinja"), encoding: .utf8), ChatTemplate.chatmlJinja)
    }
}
