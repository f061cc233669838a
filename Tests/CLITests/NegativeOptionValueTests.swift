import ArgumentParser
import XCTest
@testable import dpo

/// A negative number after a flag is that flag's value (`--temperature -1` as `--temperature=-1`),
/// so the user gets the option's own range message, not "Missing value"; a number that does not
/// fit its type names the flag.
final class NegativeOptionValueTests: XCTestCase {

    private func rejection(_ arguments: [String], file: StaticString = #filePath, line: UInt = #line) -> String {
        do {
            _ = try DPOCommand.parseAsRoot(arguments)
            XCTFail("\(arguments) parsed", file: file, line: line)
            return ""
        } catch {
            return DPOCommand.message(for: error)
        }
    }

    func testGenerateNegativeValuesGiveTheRangeMessageInBothForms() {
        let base = ["generate", "--model", "m", "--prompt", "x"]
        let expected = [
            "--max-new-tokens": "--max-new-tokens must be positive, got -1",
            "--temperature": "--temperature must be >= 0 (0 = greedy), got -1.0",
            "--top-p": "--top-p must be in (0, 1], got -1.0",
        ]
        for (flag, message) in expected {
            XCTAssertEqual(rejection(base + ["\(flag)=-1"]), message, flag)
            XCTAssertEqual(rejection(base + [flag, "-1"]), message, flag)
        }
    }

    func testAnOutOfRangeIntegerNamesTheFlag() {
        let base = ["generate", "--model", "m", "--prompt", "x"]
        for flag in ["--max-new-tokens", "--seed"] {
            let message = rejection(base + [flag, "99999999999999999999999"])
            XCTAssertTrue(message.contains(flag), message)
            XCTAssertTrue(message.contains("99999999999999999999999"), message)
        }
        let seed = rejection(base + ["--seed", "-1"])
        XCTAssertTrue(seed.contains("--seed"), seed)
    }
}
