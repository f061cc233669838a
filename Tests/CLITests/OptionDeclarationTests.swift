import ArgumentParser
import Foundation
import Training
import XCTest
@testable import dpo

/// Each `dpo train` option is declared once, in `TrainingParameters.options`; the parser's
/// flags, the `--config` keys and the `--help` defaults must agree with that table. This test
/// fails when one of them drifts (a flag added without a row, a default changed in one place).
final class OptionDeclarationTests: XCTestCase {
    /// Options whose default is a description, not a value `apply` takes.
    static let describedDefaults: Set<String> = ["model", "data", "out", "ref-model", "eval-data", "resume", "allreduce-dtype", "threads",
                                                  "lora-alpha", "adapter", "bucket-mb"]

    /// The state of every stored property, for comparing parameters.
    func describe(_ p: TrainingParameters) -> String {
        var text = ""
        dump(p, to: &text)
        return text
    }

    /// A value of `option` other than its default that `apply` accepts.
    func sample(_ option: TrainingParameters.Option) -> String {
        let choices = option.valueName.split(separator: "|").map(String.init)
        if option.valueName == "LIST" { return "q_proj,v_proj" }  // --lora-targets
        if option.valueName == "true|false" { return option.defaultValue == "true" ? "false" : "true" }
        if choices.count > 1, !option.valueName.contains("_DIR") { return choices.first { $0 != option.defaultValue && $0 != "auto" } ?? choices[0] }
        if option.valueName.hasSuffix("DIR|auto") { return "auto" }
        if ["DIR", "FILE", "KEY"].contains(option.valueName) { return "sample-\(option.name)" }
        return option.defaultValue == "3" ? "5" : "3"
    }

    /// `dpo train` with the required options plus `extra`, as the command resolves it.
    func resolve(_ extra: [String]) throws -> TrainingParameters {
        guard let command = try DPOCommand.parseAsRoot(["train"] + extra) as? TrainCommand else {
            throw ValidationError("\(extra) did not parse as dpo train")
        }
        return try command.resolvedParameters()
    }

    func testEveryFlagConfigKeyAndDefaultAgreeWithTheTable() throws {
        let defaults = TrainingParameters()
        let help = DPOCommand.helpMessage(for: TrainCommand.self).split(whereSeparator: \.isWhitespace).joined(separator: " ")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("options-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        for option in TrainingParameters.options {
            let name = option.name
            // --help shows the table's text and default, once.
            let expected = option.helpWithDefault.split(whereSeparator: \.isWhitespace).joined(separator: " ")
            XCTAssertTrue(help.contains("--\(name) "), "--\(name) missing from dpo train --help")
            XCTAssertEqual(help.components(separatedBy: expected).count - 1, 1, "--\(name): help/default not shown exactly once: '\(expected)'")
            // The default the help names is the parameters' default.
            if !Self.describedDefaults.contains(name) {
                var applied = TrainingParameters()
                try applied.apply(name, option.defaultValue)
                XCTAssertEqual(describe(applied), describe(defaults), "--\(name): --help says default \(option.defaultValue), the parameters start elsewhere")
            }
            // The flag, the config key (both spellings) and the table's apply give the same parameters.
            let value = sample(option)
            var viaTable = TrainingParameters()
            try viaTable.apply(name, value)
            XCTAssertNotEqual(describe(viaTable), describe(defaults), "--\(name) \(value) changed nothing")
            // An option takes the value; a flag (false by default) is given alone.
            var viaFlag = try? resolve(["--\(name)", value])
            if viaFlag == nil && value == "true" { viaFlag = try resolve(["--\(name)"]) }
            XCTAssertEqual(viaFlag.map(describe), describe(viaTable), "--\(name) \(value) on the command line")
            for key in [name, name.replacingOccurrences(of: "-", with: "_")] {
                let file = directory.appendingPathComponent("\(key).yaml")
                try "\(key): \(value)\n".write(to: file, atomically: true, encoding: .utf8)
                XCTAssertEqual(describe(try resolve(["--config", file.path])), describe(viaTable), "config key \(key): \(value)")
            }
        }
        // No flag of the command lives outside the table (option lines start "  --name", descriptions are indented further).
        let raw = DPOCommand.helpMessage(for: TrainCommand.self)
        let flags = raw.split(separator: "\n").compactMap { line -> String? in
            guard line.hasPrefix("  --") else { return nil }
            return String(line.dropFirst(4).prefix { $0.isLetter || $0.isNumber || $0 == "-" })
        }
        XCTAssertGreaterThan(flags.count, 40, raw)
        let declared = Set(TrainingParameters.options.map(\.name) + ["config", "version"])
        XCTAssertEqual(Set(flags).subtracting(declared), [], "flags of dpo train not in TrainingParameters.options")
    }
}
