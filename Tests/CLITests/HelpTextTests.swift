import ArgumentParser
import XCTest
@testable import dpo

/// What a new user meets first: `dpo --version`, and `--help` of every command with each
/// default shown once and a usage line that can be typed as printed.
final class HelpTextTests: XCTestCase {
    /// Every command reachable from `dpo`, with the words that invoke it.
    func commands(_ root: ParsableCommand.Type = DPOCommand.self, path: [String] = []) -> [(path: [String], type: ParsableCommand.Type)] {
        root.configuration.subcommands.flatMap { sub -> [(path: [String], type: ParsableCommand.Type)] in
            let name = sub.configuration.commandName ?? ""
            return [(path + [name], sub)] + commands(sub, path: path + [name])
        }
    }

    func testVersion() {
        XCTAssertThrowsError(try DPOCommand.parseAsRoot(["--version"])) { error in
            XCTAssertEqual(DPOCommand.message(for: error), DPOCommand.version)
        }
        XCTAssertTrue(DPOCommand.version.hasPrefix("dpo "), DPOCommand.version)
    }

    /// An option's help (its line and the indented lines under it) names its default at most once.
    func testEveryDefaultIsShownOnce() {
        for (path, type) in commands() {
            let help = DPOCommand.helpMessage(for: type)
            var blocks: [String] = []
            for line in help.split(separator: "\n") {
                if line.hasPrefix("  -") { blocks.append(String(line)) } else if line.hasPrefix("   "), !blocks.isEmpty { blocks[blocks.count - 1] += " " + line }
            }
            for block in blocks {
                XCTAssertLessThanOrEqual(block.components(separatedBy: "(default:").count - 1, 1, "dpo \(path.joined(separator: " ")): \(block)")
            }
        }
    }

    /// The USAGE line of each command starts with the words that run it.
    func testUsageLinesNameTheCommandAsTyped() {
        for (path, type) in commands() where type.configuration.shouldDisplay {
            let help = DPOCommand.helpMessage(for: type)
            let usage = help.split(separator: "\n").first { $0.hasPrefix("USAGE:") }.map(String.init) ?? ""
            let expected = "USAGE: " + (["dpo"] + path).joined(separator: " ")
            XCTAssertTrue(usage == expected || usage.hasPrefix(expected + " "), "dpo \(path.joined(separator: " ")): '\(usage)'")
        }
        let allreduce = DPOCommand.helpMessage(for: BenchAllreduceGroupCommand.self)
        XCTAssertTrue(allreduce.contains("USAGE: dpo bench allreduce ["), allreduce)
    }

    /// `--loss sft` help says what data it takes.
    func testSFTLossHelpStatesItsData() {
        let help = DPOCommand.helpMessage(for: TrainCommand.self).split(whereSeparator: \.isWhitespace).joined(separator: " ")
        XCTAssertTrue(help.contains("sft = the chosen completions' NLL only, and its data is still preference records"), help)
    }

    /// Precision parses through ExpressibleByArgument: the help lists the cases and a wrong value names them.
    func testPrecisionOptionsParseAsTheEnum() throws {
        let bench = try XCTUnwrap(try DPOCommand.parseAsRoot(["bench", "dpo", "--precision", "fp16"]) as? BenchDPOCommand)
        XCTAssertEqual(bench.precision, .fp16)
        XCTAssertTrue(DPOCommand.helpMessage(for: BenchModelCommand.self).contains("(values: fp32, fp16; default: fp32)"))
        XCTAssertThrowsError(try DPOCommand.parseAsRoot(["bench", "model", "--precision", "int4"])) { error in
            let message = DPOCommand.message(for: error)
            XCTAssertTrue(message.contains("int4") && message.contains("fp32") && message.contains("fp16"), message)
        }
    }
}
