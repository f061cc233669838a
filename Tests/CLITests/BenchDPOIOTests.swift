import Foundation
import TestSupport
import XCTest

/// `dpo bench dpo --io` on the tiny preset, through the built binary: the JSON line carries the
/// step's system time and page faults, the load from a model directory, the checkpoint save and
/// the plain writes of the same bytes; save_bytes is what the checkpoint's files hold.
final class BenchDPOIOTests: XCTestCase {
    /// Runs the binary; (status, stdout, stderr).
    private func run(_ arguments: [String]) throws -> (Int32, String, String) {
        let run = try DPORun.run(arguments)
        return (run.status, run.standardOutput, run.standardError)
    }

    private func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("dpo-bench-io-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    /// Bytes of every regular file under `url`.
    private func totalBytes(under url: URL) throws -> Int {
        let enumerator = try XCTUnwrap(FileManager.default.enumerator(at: url, includingPropertiesForKeys: [.isRegularFileKey, .fileSizeKey]))
        var total = 0
        for case let file as URL in enumerator where try file.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile == true {
            total += try file.resourceValues(forKeys: [.fileSizeKey]).fileSize ?? 0
        }
        return total
    }

    func testIOFiguresArePresentPositiveAndMatchTheCheckpoint() throws {
        let io = try temporaryDirectory()
        let (status, output, errors) = try run([
            "bench", "dpo", "--preset", "tiny", "--batch-pairs", "1", "--seq", "16", "--steps", "1", "--threads", "1",
            "--io", "--io-dir", io.path, "--keep-io-files",
        ])
        XCTAssertEqual(status, 0, errors)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any], output)
        XCTAssertEqual(json["model"] as? String, "tiny")
        for key in ["load_s", "load_cpu_s", "save_s", "save_cpu_s", "dd_s", "save_vs_dd"] {
            let value = try XCTUnwrap(json[key] as? Double, "\(key) missing in \(output)")
            XCTAssertGreaterThan(value, 0, key)
        }
        for key in ["step_sys_s", "step_minor_faults", "load_sys_s", "load_minor_faults"] {
            let value = try XCTUnwrap(json[key] as? Double, "\(key) missing in \(output)")
            XCTAssertGreaterThanOrEqual(value, 0, key)
        }
        // The checkpoint the save wrote, left in place by --keep-io-files.
        let runs = try FileManager.default.contentsOfDirectory(atPath: io.path).filter { $0.hasPrefix("dpo-bench-io-") }
        XCTAssertEqual(runs.count, 1, "\(runs)")
        let out = io.appendingPathComponent(runs[0]).appendingPathComponent("out")
        let checkpoints = try FileManager.default.contentsOfDirectory(atPath: out.path).filter { $0.hasPrefix("checkpoint-") }
        XCTAssertEqual(checkpoints, ["checkpoint-2"], "one warm-up and one timed step")
        let checkpoint = out.appendingPathComponent(checkpoints[0])
        for name in ["model.safetensors", "optimizer.safetensors", "manifest.json", "tokenizer.json", "trainer_state.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: checkpoint.appendingPathComponent(name).path), name)
        }
        let saveBytes = try XCTUnwrap(json["save_bytes"] as? Int)
        XCTAssertEqual(saveBytes, try totalBytes(under: checkpoint))
        // The plain writes are removed, the preset model written for the load stays.
        XCTAssertFalse(FileManager.default.fileExists(atPath: io.appendingPathComponent(runs[0]).appendingPathComponent("dd").path))
        XCTAssertTrue(FileManager.default.fileExists(
            atPath: io.appendingPathComponent(runs[0]).appendingPathComponent("model/model.safetensors").path))

        // Without --io nothing is written and the disk figures are null.
        let (plainStatus, plainOutput, plainErrors) = try run(["bench", "dpo", "--preset", "tiny", "--batch-pairs", "1", "--seq", "16", "--steps", "1"])
        XCTAssertEqual(plainStatus, 0, plainErrors)
        let plain = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(plainOutput.utf8)) as? [String: Any])
        XCTAssertTrue(plain["save_s"] is NSNull, plainOutput)
        XCTAssertTrue(plain["load_s"] is NSNull, plainOutput)
        XCTAssertNotNil(plain["step_sys_s"] as? Double)
    }

    func testModelDirectoryIsBenchedAndNamed() throws {
        let model = try temporaryDirectory().appendingPathComponent("model")
        let (initStatus, _, initErrors) = try run(["init", "--out", model.path, "--preset", "tiny"])
        XCTAssertEqual(initStatus, 0, initErrors)
        let (status, output, errors) = try run(["bench", "dpo", "--model", model.path, "--batch-pairs", "1", "--seq", "16", "--steps", "1"])
        XCTAssertEqual(status, 0, errors)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any], output)
        XCTAssertEqual(json["model"] as? String, model.path)
        XCTAssertTrue(json["preset"] is NSNull)
        XCTAssertGreaterThan(try XCTUnwrap(json["load_s"] as? Double), 0)
        XCTAssertTrue(json["save_s"] is NSNull)

        let (badStatus, _, badErrors) = try run(["bench", "dpo", "--model", model.appendingPathComponent("nope").path])
        XCTAssertNotEqual(badStatus, 0)
        XCTAssertTrue(badErrors.contains("nope"), badErrors)
    }
}
