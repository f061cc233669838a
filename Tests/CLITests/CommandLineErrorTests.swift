import Foundation
import TestSupport
import XCTest

/// The built `dpo` binary: user mistakes end with a one-line cause on stderr and a non-zero
/// status, never a crash or a stack trace; the happy paths print what they document.
final class CommandLineErrorTests: XCTestCase {

    private func run(_ arguments: [String]) throws -> DPORun { try DPORun.run(arguments) }

    private func temporaryDirectory() -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("dpo-cli-\(UUID().uuidString)")
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    /// A failure with `cause` on the first line of stderr and no crash output.
    private func assertUserError(_ arguments: [String], cause: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let outcome = try run(arguments)
        XCTAssertNotEqual(outcome.status, 0, "\(arguments) succeeded", file: file, line: line)
        XCTAssertLessThan(outcome.status, 128, "\(arguments) died of a signal", file: file, line: line)
        let firstLine = outcome.standardError.components(separatedBy: "\n").first ?? ""
        XCTAssertEqual(firstLine, "Error: " + cause, file: file, line: line)
        for crashMarker in ["Fatal error", "Stack dump", "Current stack trace", "backtrace", "Illegal instruction"] {
            XCTAssertFalse(outcome.standardError.contains(crashMarker), "\(arguments): \(crashMarker) in stderr", file: file, line: line)
        }
    }

    // MARK: - Mistakes

    func testOptionMistakesNameTheOption() throws {
        try assertUserError(["init", "--preset", "huge", "--out", "x"], cause: "--preset huge: expected one of tiny, small, minimind, smollm2-135m, qwen2.5-0.5b")
        try assertUserError(["generate", "--model", "m", "--prompt", "x", "--top-p", "2"], cause: "--top-p must be in (0, 1], got 2.0")
        try assertUserError(["experiment", "nope"], cause: "unknown experiment 'nope'; choose one of beta-sweep, dpo-vs-ipo, dpo-vs-sft")
        try assertUserError(["score"], cause: "Missing expected argument '--model <dir>'")
    }

    func testMissingFilesAndDirectoriesAreNamed() throws {
        try assertUserError(["score", "--model", "/nonexistent/model"], cause: "model: --model /nonexistent/model: no such directory")
        try assertUserError(["generate", "--model", "/nonexistent/model", "--prompt", "x"],
                            cause: "model: --model /nonexistent/model: no such directory")
        try assertUserError(["init", "--out", temporaryDirectory().path, "--tokenizer", "/nonexistent/tok"],
                            cause: "tokenizer: --tokenizer /nonexistent/tok: /nonexistent/tok: no tokenizer.json found (give a tokenizer.json file, a model directory holding one, or 'byte')")
    }

    func testInitRefusesANonEmptyDirectoryWithoutForce() throws {
        let out = temporaryDirectory()
        let first = try run(["init", "--out", out.path])
        XCTAssertEqual(first.status, 0, first.standardError)
        XCTAssertTrue(first.standardOutput.hasPrefix("wrote \(out.path): tiny, 109056 parameters"), first.standardOutput)
        try assertUserError(["init", "--out", out.path],
                            cause: "output directory: \(out.path) is not empty (6 entries); choose another --out or pass --force")
        XCTAssertEqual(try run(["init", "--out", out.path, "--force", "--seed", "2"]).status, 0)
    }

    func testDemoOnTheWrongRankCountSaysHowToStartIt() throws {
        try assertUserError(["demo", "--ranks", "2", "--out", temporaryDirectory().path],
                            cause: "invalid option: --ranks 2 but this process is one of 1 rank(s); start it with ./launch/local.sh -n 2 -- demo ... (or mpirun -np 2 dpo demo ...)")
    }

    // MARK: - Happy paths

    func testScoreAndGenerateOnAFreshModel() throws {
        let out = temporaryDirectory()
        XCTAssertEqual(try run(["init", "--out", out.path]).status, 0)
        let score = try run(["score", "--model", out.path, "--n", "5"])
        XCTAssertEqual(score.status, 0, score.standardError)
        let json = try JSONSerialization.jsonObject(with: Data(score.standardOutput.utf8)) as? [String: Any]
        XCTAssertEqual(json?["task"] as? String, "arithmetic")
        XCTAssertEqual(json?["n"] as? Int, 5)
        XCTAssertNotNil(json?["accuracy"] as? Double)
        let generate = try run(["generate", "--model", out.path, "--prompt", "1+1=", "--max-new-tokens", "3", "--temperature", "1", "--seed", "4"])
        XCTAssertEqual(generate.status, 0, generate.standardError)
        XCTAssertTrue(generate.standardOutput.hasSuffix("\n"))
        let again = try run(["generate", "--model", out.path, "--prompt", "1+1=", "--max-new-tokens", "3", "--temperature", "1", "--seed", "4"])
        XCTAssertEqual(again.standardOutput, generate.standardOutput, "same seed, same text")
    }
}
