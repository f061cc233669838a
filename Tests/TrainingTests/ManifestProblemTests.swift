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
}
