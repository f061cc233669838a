import Foundation
import TestSupport
import XCTest

@testable import Training

/// Issue 16's Foundation texts: a `manifest.json` that is JSON of the wrong shape was reported
/// with Swift's decoding dump (`DecodingError.keyNotFound: ... CodingKeys(stringValue: ...)`).
/// It is now one line naming the file, the key and what is wrong.
final class ManifestProblemTests: XCTestCase {
    func testABadManifestIsReportedByKeyWithoutDecodingDumps() throws {
        let job = try TrainingJobSandbox()
        _ = try job.trainSucceeding(ranks: 1, out: "run", ["--max-steps", "4", "--save-every", "2"])
        let cases: [(String, String)] = [
            ("{garbage", "not valid JSON"),
            (#"{"files": 3, "step": 4, "format_version": 1}"#, "key 'files': expected an object, found a number"),
            (#"{"step": 4}"#, "key 'format_version' is missing"),
            ("[]", "expected an object, found an array"),
        ]
        for (index, (content, expected)) in cases.enumerated() {
            let out = "case\(index)"
            try FileManager.default.copyItem(at: job.out("run"), to: job.out(out))
            try content.write(to: job.out(out).appendingPathComponent("final/manifest.json"), atomically: true, encoding: .utf8)
            let resumed = try job.trainSucceeding(ranks: 1, out: out, ["--max-steps", "6", "--save-every", "2", "--resume", "auto"])
            let line = try XCTUnwrap(resumed.output.split(separator: "\n").first { $0.hasPrefix("skipping ") }, resumed.output)
            XCTAssertTrue(line.contains("final/manifest.json is not a valid manifest: \(expected)"), String(line))
            for dump in ["DecodingError", "CodingKeys", "Debug description", "Dictionary<"] {
                XCTAssertFalse(line.contains(dump), String(line))
            }
        }
    }

    /// A `manifest.json` or `trainer_state.json` that is not JSON named the file and said "not
    /// valid JSON", nothing more. It now gives the line and column, what is there, and what to
    /// do: `--resume auto` skips such a checkpoint; an explicit `--resume` of it, or a
    /// trainer state that matches its manifest, is refused with the way out.
    func testManifestsAndTrainerStatesThatAreNotJSONNameTheLineAndColumnAndWhatToDo() throws {
        let job = try TrainingJobSandbox()
        _ = try job.trainSucceeding(ranks: 1, out: "run", ["--max-steps", "4", "--save-every", "2"])
        try FileManager.default.copyItem(at: job.out("run"), to: job.out("manifest"))
        let final = job.out("manifest").appendingPathComponent("final")
        try "{\n  \"step\": 4,\n  files".write(to: final.appendingPathComponent("manifest.json"), atomically: true, encoding: .utf8)
        let problem = "final/manifest.json is not a valid manifest: not valid JSON at line 3, column 3 (invalid value)"
        let auto = try job.trainSucceeding(ranks: 1, out: "manifest", ["--max-steps", "6", "--save-every", "2", "--resume", "auto"])
        let skipped = try XCTUnwrap(auto.output.split(separator: "\n").first { $0.hasPrefix("skipping ") }, auto.output)
        XCTAssertTrue(skipped.contains(problem), String(skipped))
        XCTAssertTrue(skipped.hasSuffix("the checkpoint is incomplete or corrupted; --resume auto skips it, "
                                        + "or remove \(final.path) (or restore it from a copy)"), String(skipped))
        XCTAssertTrue(auto.output.contains("at step 2"), auto.output)

        // The same checkpoint given by name: refused, with the same line.
        try FileManager.default.copyItem(at: job.out("run"), to: job.out("named"))
        let named = job.out("named").appendingPathComponent("final")
        try "{\n  \"step\": 4,\n  files".write(to: named.appendingPathComponent("manifest.json"), atomically: true, encoding: .utf8)
        let refused = try job.train(ranks: 1, out: "named", ["--max-steps", "6", "--resume", named.path])
        XCTAssertNotEqual(refused.status, 0, refused.output)
        XCTAssertTrue(refused.output.contains(problem), refused.output)
        XCTAssertTrue(refused.output.contains("or remove \(named.path)"), refused.output)

        // trainer_state.json cut short, its manifest entry updated to match (as a save that wrote it so would).
        try FileManager.default.copyItem(at: job.out("run"), to: job.out("state"))
        let checkpoint = job.out("state").appendingPathComponent("final")
        let state = Data("{\"global_step\": 4,\n \"epoch\": ".utf8)
        try state.write(to: checkpoint.appendingPathComponent(TrainerState.fileName))
        let manifestURL = checkpoint.appendingPathComponent(CheckpointStore.manifestName)
        var manifest = try JSONDecoder().decode(CheckpointManifest.self, from: Data(contentsOf: manifestURL))
        manifest.files[TrainerState.fileName] = .init(bytes: state.count, sha256: SHA256.hex(state))
        try JSONEncoder().encode(manifest).write(to: manifestURL)
        let broken = try job.train(ranks: 1, out: "state", ["--max-steps", "6", "--resume", "auto"])
        XCTAssertNotEqual(broken.status, 0, broken.output)
        XCTAssertTrue(broken.output.contains("final/trainer_state.json is not a valid trainer state: not valid JSON at line 2, column 11 "
                                             + "(the file ends in the middle of a value)"), broken.output)
        XCTAssertTrue(broken.output.contains("move \(checkpoint.path) away and run again with --resume auto to continue from the checkpoint before it"),
                      broken.output)
        for dump in ["DecodingError", "Debug description", "The given data"] { XCTAssertFalse(broken.output.contains(dump), broken.output) }
    }
}
