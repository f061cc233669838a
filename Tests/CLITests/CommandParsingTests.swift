import ArgumentParser
import Preference
import XCTest
@testable import dpo

/// The commands of this layer (init, generate, score, demo, experiment) parse and reject
/// their options as documented, with a one-line cause.
final class CommandParsingTests: XCTestCase {

    /// Parses `arguments` as the whole command line and returns the leaf command.
    private func parse(_ arguments: [String]) throws -> ParsableCommand {
        try DPOCommand.parseAsRoot(arguments)
    }

    /// The message ArgumentParser prints for a command line that does not parse.
    private func rejection(_ arguments: [String], file: StaticString = #filePath, line: UInt = #line) -> String {
        do {
            _ = try parse(arguments)
            XCTFail("\(arguments) parsed", file: file, line: line)
            return ""
        } catch {
            return DPOCommand.message(for: error)
        }
    }

    // MARK: - init

    func testInitDefaultsAndOptions() throws {
        let defaults = try XCTUnwrap(try parse(["init", "--out", "runs/init"]) as? InitCommand)
        XCTAssertEqual(defaults.preset, "tiny")
        XCTAssertEqual(defaults.out, "runs/init")
        XCTAssertEqual(defaults.seed, 0)
        XCTAssertEqual(defaults.dtype, "fp32")
        XCTAssertEqual(defaults.tokenizer, "byte")
        XCTAssertNil(defaults.vocabSize)
        XCTAssertFalse(defaults.force)
        let given = try XCTUnwrap(try parse(["init", "--preset", "minimind", "--out", "o", "--seed", "9", "--dtype", "fp16",
                                             "--tokenizer", "tok", "--vocab-size", "7000", "--force"]) as? InitCommand)
        XCTAssertEqual([given.preset, given.dtype, given.tokenizer], ["minimind", "fp16", "tok"])
        XCTAssertEqual(given.seed, 9)
        XCTAssertEqual(given.vocabSize, 7000)
        XCTAssertTrue(given.force)
    }

    func testInitRejections() {
        XCTAssertEqual(rejection(["init", "--preset", "huge", "--out", "o"]), "--preset huge: expected one of tiny, small, minimind, smollm2-135m, qwen2.5-0.5b")
        XCTAssertEqual(rejection(["init", "--out", "o", "--dtype", "int8"]), "--dtype int8: expected one of fp32, fp16, bf16")
        XCTAssertEqual(rejection(["init", "--out", "o", "--vocab-size", "0"]), "--vocab-size must be positive, got 0")
        XCTAssertEqual(rejection(["init"]), "Missing expected argument '--out <dir>'")
        XCTAssertTrue(rejection(["init", "--out", "o", "--seed", "-1"]).contains("--seed"))
    }

    // MARK: - generate

    func testGenerateDefaultsAndOptions() throws {
        let defaults = try XCTUnwrap(try parse(["generate", "--model", "m", "--prompt", "12+7="]) as? GenerateCommand)
        XCTAssertEqual(defaults.maxNewTokens, 128)
        XCTAssertEqual(defaults.temperature, 0)
        XCTAssertEqual(defaults.topP, 1)
        XCTAssertEqual(defaults.seed, 0)
        XCTAssertFalse(defaults.chat)
        XCTAssertEqual(defaults.precision, "fp32")
        let given = try XCTUnwrap(try parse(["generate", "--model", "m", "--prompt", "hi", "--chat", "--max-new-tokens", "5",
                                             "--temperature", "0.7", "--top-p", "0.9", "--seed", "3"]) as? GenerateCommand)
        XCTAssertTrue(given.chat)
        XCTAssertEqual(given.maxNewTokens, 5)
        XCTAssertEqual(given.temperature, 0.7)
        XCTAssertEqual(given.topP, 0.9)
        XCTAssertEqual(given.seed, 3)
    }

    func testGenerateRejections() {
        let base = ["generate", "--model", "m", "--prompt", "x"]
        XCTAssertEqual(rejection(base + ["--max-new-tokens", "0"]), "--max-new-tokens must be positive, got 0")
        XCTAssertEqual(rejection(base + ["--temperature=-1"]), "--temperature must be >= 0 (0 = greedy), got -1.0")
        XCTAssertEqual(rejection(base + ["--top-p", "1.5"]), "--top-p must be in (0, 1], got 1.5")
        XCTAssertEqual(rejection(base + ["--top-p", "0"]), "--top-p must be in (0, 1], got 0.0")
        XCTAssertEqual(rejection(base + ["--precision", "int4"]), "--precision int4: expected fp32 or fp16")
        XCTAssertEqual(rejection(["generate", "--model", "m"]), "Missing expected argument '--prompt <text>'")
    }

    // MARK: - score

    func testScoreDefaultsAndRejections() throws {
        let defaults = try XCTUnwrap(try parse(["score", "--model", "m"]) as? ScoreCommand)
        XCTAssertEqual(defaults.task, "arithmetic")
        XCTAssertEqual(defaults.n, 64)  // each held-out prompt once (was 80: 16 of them scored twice, issue 16)
        XCTAssertEqual(defaults.seed, 0)
        XCTAssertEqual(defaults.split, "held-out")
        XCTAssertFalse(defaults.conversational)
        XCTAssertEqual(rejection(["score", "--model", "m", "--task", "chess"]), "--task chess: expected one of arithmetic")
        XCTAssertEqual(rejection(["score", "--model", "m", "--n", "0"]), "--n must be positive, got 0")
        XCTAssertEqual(rejection(["score", "--model", "m", "--split", "test"]), "--split test: expected held-out or train")
        XCTAssertEqual(rejection(["score"]), "Missing expected argument '--model <dir>'")
    }

    // MARK: - demo

    func testDemoDefaultsAndRejections() throws {
        let defaults = try XCTUnwrap(try parse(["demo"]) as? DemoCommand)
        XCTAssertEqual(defaults.out, "runs/demo")
        XCTAssertFalse(defaults.quick)
        XCTAssertNil(defaults.ranks)
        XCTAssertNil(defaults.beta)
        let given = try XCTUnwrap(try parse(["demo", "--quick", "--out", "d", "--ranks", "2", "--beta", "0.3", "--rpo-alpha", "0",
                                             "--sft-epochs", "3", "--dpo-epochs", "1", "--dpo-lr", "1e-4", "--sft-wrong-share", "0.5"]) as? DemoCommand)
        XCTAssertTrue(given.quick)
        XCTAssertEqual(given.ranks, 2)
        XCTAssertEqual(given.beta, 0.3)
        XCTAssertEqual(given.rpoAlpha, 0)
        XCTAssertEqual(rejection(["demo", "--ranks", "0"]), "--ranks must be at least 1, got 0")
        XCTAssertEqual(rejection(["demo", "--beta", "0"]), "--beta must be positive, got 0.0")
        XCTAssertEqual(rejection(["demo", "--sft-wrong-share", "1"]), "--sft-wrong-share must be in [0, 1), got 1.0")
        XCTAssertEqual(rejection(["demo", "--rpo-alpha=-1"]), "--rpo-alpha must be >= 0, got -1.0")
        XCTAssertEqual(rejection(["demo", "--dpo-epochs", "0"]), "--dpo-epochs must be at least 1, got 0")
    }

    // MARK: - experiment

    func testExperimentNamesAndRejections() throws {
        for name in ["beta-sweep", "dpo-vs-ipo", "dpo-vs-sft"] {
            let command = try XCTUnwrap(try parse(["experiment", name, "--quick"]) as? ExperimentCommand)
            XCTAssertEqual(command.name, name)
            XCTAssertTrue(command.quick)
            XCTAssertNil(command.out)
        }
        XCTAssertEqual(rejection(["experiment", "lr-sweep"]),
                       "unknown experiment 'lr-sweep'; choose one of beta-sweep, dpo-vs-ipo, dpo-vs-sft")
        XCTAssertEqual(rejection(["experiment"]), "Missing expected argument '<name>'")
    }

    // MARK: - logps / eval data shape

    /// `dpo logps` and `dpo eval` read the data the way `dpo train` does: chat template and key names.
    func testLogpsAndEvalTakeTheDataShapeOfTrain() throws {
        let defaults = try XCTUnwrap(try parse(["logps", "--model", "m", "--data", "d"]) as? LogpsCommand)
        XCTAssertNil(defaults.dataShapeArguments.dataShape.chatTemplate)
        XCTAssertEqual(defaults.dataShapeArguments.dataShape.keys, DatasetKeys())
        let given = try XCTUnwrap(try parse(["eval", "--model", "m", "--data", "d", "--reference-free", "--chat-template", "llama3",
                                             "--prompt-key", "q", "--chosen-key", "good", "--rejected-key", "bad"]) as? EvalCommand)
        let shape = given.dataShapeArguments.dataShape
        XCTAssertEqual(shape.chatTemplate, .llama3)
        XCTAssertEqual(shape.keys, DatasetKeys(prompt: "q", chosen: "good", rejected: "bad"))
        XCTAssertEqual(rejection(["logps", "--model", "m", "--data", "d", "--chat-template", "vicuna"]),
                       "--chat-template vicuna: expected chatml, llama3, none, auto or a .jinja file (there is no such file)")
        for command in [LogpsCommand.self, EvalCommand.self] as [ParsableCommand.Type] {
            let help = DPOCommand.helpMessage(for: command)
            for option in ["--chat-template", "--prompt-key", "--chosen-key", "--rejected-key"] {
                XCTAssertTrue(help.contains(option), "\(command) help lacks \(option)")
            }
        }
    }

    // MARK: - Help

    /// `--help` of each of these commands lists every option, and every option that takes a value
    /// and is not required shows its default.
    func testHelpListsEveryOptionWithItsDefault() {
        let expected: [(ParsableCommand.Type, [String])] = [
            (InitCommand.self, ["--preset", "--out", "--seed", "--dtype", "--tokenizer", "--vocab-size", "--force"]),
            (GenerateCommand.self, ["--model", "--prompt", "--chat", "--max-new-tokens", "--temperature", "--top-p", "--seed", "--precision"]),
            (ScoreCommand.self, ["--model", "--task", "--n", "--seed", "--split", "--conversational", "--verbose"]),
            (DemoCommand.self, ["--out", "--quick", "--ranks", "--sft-epochs", "--sft-wrong-share", "--dpo-epochs", "--dpo-lr",
                                "--beta", "--rpo-alpha"]),
            (ExperimentCommand.self, ["--out", "--quick"]),
        ]
        for (command, options) in expected {
            let help = DPOCommand.helpMessage(for: command)
            for option in options { XCTAssertTrue(help.contains(option), "\(command) help lacks \(option)") }
            for problem in HelpAudit.optionsWithoutDefault(help) {
                XCTFail("\(command): \(problem)")
            }
        }
    }

    /// The audit itself: finds a value option with no default, and accepts required ones and flags.
    func testHelpAuditFindsMissingDefaults() {
        let help = """
            USAGE: dpo x --model <dir> [--n <n>] [--k <k>] [--flag]

            OPTIONS:
              --model <dir>           Model directory.
              --n <n>                 Count. (default: 3)
              --k <k>                 A thing whose help
                                      over two lines.
              --flag                  A flag.
              -h, --help              Show help information.
            """
        XCTAssertEqual(HelpAudit.optionsWithoutDefault(help), ["--k takes a value, is optional and its help shows no default"])
    }
}

/// Reads ArgumentParser help text: which optional value options do not state a default.
enum HelpAudit {
    static func optionsWithoutDefault(_ help: String) -> [String] {
        let lines = help.components(separatedBy: "\n")
        let usage = lines.first { $0.hasPrefix("USAGE:") } ?? ""
        // Required options appear in the usage line outside brackets.
        var required = Set<String>()
        var depth = 0
        var token = ""
        for character in usage + " " {
            if character == "[" { depth += 1 } else if character == "]" { depth -= 1 }
            if character == " " || character == "[" || character == "]" {
                if depth == 0, token.hasPrefix("--") { required.insert(token) }
                token = ""
            } else { token.append(character) }
        }
        var problems: [String] = []
        var current: (name: String, takesValue: Bool, text: String)?
        func finish() {
            guard let option = current else { return }
            if option.takesValue, !required.contains(option.name), !option.text.contains("default") {
                problems.append("\(option.name) takes a value, is optional and its help shows no default")
            }
            current = nil
        }
        for line in lines.drop(while: { !$0.hasPrefix("OPTIONS:") }).dropFirst() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.hasPrefix("-") {
                finish()
                let words = trimmed.components(separatedBy: " ").filter { !$0.isEmpty }
                guard let name = words.first(where: { $0.hasPrefix("--") })?.trimmingCharacters(in: CharacterSet(charactersIn: ",")) else { continue }
                let nameIndex = words.firstIndex { $0.hasPrefix("--") }!
                let takesValue = words.count > nameIndex + 1 && words[nameIndex + 1].hasPrefix("<")
                current = (name, takesValue, trimmed)
            } else if current != nil, !trimmed.isEmpty {
                current!.text += " " + trimmed
            } else {
                finish()
            }
        }
        finish()
        return problems
    }
}
