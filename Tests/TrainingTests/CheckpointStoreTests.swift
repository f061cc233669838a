import Foundation
import XCTest

@testable import Training

/// SHA-256, atomic saves, verification, rotation and the resume choice.
final class CheckpointStoreTests: XCTestCase {
    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("ckpt-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: directory) }

    // MARK: - SHA-256

    /// FIPS 180-4 examples and a multi-block message fed in odd pieces.
    func testSHA256KnownVectors() {
        XCTAssertEqual(SHA256.hex(Data()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256.hex(Data("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(
            SHA256.hex(Data("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        let million = Data(repeating: UInt8(ascii: "a"), count: 1_000_000)
        XCTAssertEqual(SHA256.hex(million), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
        var pieces = SHA256()
        var offset = 0
        var size = 1
        while offset < million.count {
            let end = min(offset + size, million.count)
            pieces.update(million[offset..<end])
            offset = end
            size = size * 3 % 1000 + 1
        }
        XCTAssertEqual(pieces.finalize().map { String(format: "%02x", $0) }.joined(),
                       "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    // MARK: - Saves

    private func write(_ text: String, _ name: String, in dir: URL) throws {
        let url = dir.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(text.utf8).write(to: url)
    }

    func testSaveWritesAManifestThatVerifies() throws {
        let store = CheckpointStore(outputDirectory: directory)
        let url = try store.save(name: "checkpoint-5", step: 5) { dir in
            try write("weights", "model.safetensors", in: dir)
            try write("{}", "sub/trainer_state.json", in: dir)
        }
        let manifest = try CheckpointStore.verify(url)
        XCTAssertEqual(manifest.step, 5)
        XCTAssertEqual(Set(manifest.files.keys), ["model.safetensors", "sub/trainer_state.json"])
        XCTAssertEqual(manifest.files["model.safetensors"]?.sha256, SHA256.hex(Data("weights".utf8)))
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        XCTAssertEqual(leftovers, ["checkpoint-5"], "no temporaries left behind")
    }

    func testCorruptionAndMissingManifestAreDetectedAndSkipped() throws {
        let store = CheckpointStore(outputDirectory: directory)
        for step in [2, 4, 6] {
            try store.save(name: CheckpointStore.checkpointName(step: step), step: step) { dir in
                try write("step \(step)", "model.safetensors", in: dir)
            }
        }
        // 6: flip a byte; 4: remove the manifest (as if the save died before it).
        try write("step 7", "checkpoint-6/model.safetensors", in: directory)
        try FileManager.default.removeItem(at: directory.appendingPathComponent("checkpoint-4/manifest.json"))
        XCTAssertThrowsError(try CheckpointStore.verify(directory.appendingPathComponent("checkpoint-6"))) { error in
            XCTAssertTrue("\(error)".contains("corrupted"), "\(error)")
        }
        var skipped: [String] = []
        let newest = store.newestComplete(skipped: &skipped)
        XCTAssertEqual(newest?.url.lastPathComponent, "checkpoint-2")
        XCTAssertEqual(skipped.count, 2)
        XCTAssertTrue(skipped[0].contains("checkpoint-6") && skipped[1].contains("checkpoint-4"), "\(skipped)")

        var resumeSkipped: [String] = []
        let auto = try CheckpointStore.resolveResume("auto", outputDirectory: directory, skipped: &resumeSkipped)
        XCTAssertEqual(auto?.lastPathComponent, "checkpoint-2")
        XCTAssertThrowsError(try CheckpointStore.resolveResume(
            directory.appendingPathComponent("checkpoint-6").path, outputDirectory: directory, skipped: &resumeSkipped))
        let byParent = try CheckpointStore.resolveResume(directory.path, outputDirectory: directory, skipped: &resumeSkipped)
        XCTAssertEqual(byParent?.lastPathComponent, "checkpoint-2")
        let empty = directory.appendingPathComponent("empty")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        XCTAssertNil(try CheckpointStore.resolveResume("auto", outputDirectory: empty, skipped: &resumeSkipped))
        XCTAssertThrowsError(try CheckpointStore.resolveResume(empty.path, outputDirectory: directory, skipped: &resumeSkipped))
        XCTAssertThrowsError(try CheckpointStore.resolveResume("/nonexistent/x", outputDirectory: directory, skipped: &resumeSkipped))
    }

    func testFinalIsPreferredOnATieAndNeverRotated() throws {
        let store = CheckpointStore(outputDirectory: directory)
        for step in [1, 2, 3, 4] {
            try store.save(name: CheckpointStore.checkpointName(step: step), step: step) { try write("\(step)", "a", in: $0) }
        }
        try store.save(name: "final", step: 4) { try write("final", "a", in: $0) }
        let removed = try store.rotate(keep: 2)
        XCTAssertEqual(removed.map(\.lastPathComponent).sorted(), ["checkpoint-1", "checkpoint-2"])
        XCTAssertEqual(Set(try FileManager.default.contentsOfDirectory(atPath: directory.path)), ["checkpoint-3", "checkpoint-4", "final"])
        var skipped: [String] = []
        XCTAssertEqual(store.newestComplete(skipped: &skipped)?.url.lastPathComponent, "final")
        XCTAssertEqual(try store.rotate(keep: 0), [])
    }

    /// A save that fails part-way leaves the previous checkpoint of that name as it was and no temporaries.
    func testFailedSaveKeepsThePreviousCheckpoint() throws {
        let store = CheckpointStore(outputDirectory: directory)
        try store.save(name: "final", step: 3) { try write("good", "model.safetensors", in: $0) }
        struct DiskFull: Error {}
        XCTAssertThrowsError(try store.save(name: "final", step: 9) { dir in
            try write("half", "model.safetensors", in: dir)
            throw DiskFull()
        })
        let manifest = try CheckpointStore.verify(directory.appendingPathComponent("final"))
        XCTAssertEqual(manifest.step, 3)
        XCTAssertEqual(try String(contentsOf: directory.appendingPathComponent("final/model.safetensors"), encoding: .utf8), "good")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), ["final"])
    }

    /// What a kill at each point of a save leaves is recovered: temporaries removed, a
    /// checkpoint moved aside whose replacement never landed moved back.
    func testRecoveryAfterInterruptedSaves() throws {
        let store = CheckpointStore(outputDirectory: directory)
        try store.save(name: "checkpoint-1", step: 1) { try write("one", "a", in: $0) }
        // Killed while writing checkpoint-2 (temporary, no manifest) and while replacing checkpoint-1
        // (moved aside, replacement not yet renamed).
        try write("partial", ".tmp-checkpoint-2-999/a", in: directory)
        try FileManager.default.moveItem(
            at: directory.appendingPathComponent("checkpoint-1"), to: directory.appendingPathComponent(".old-checkpoint-1-999"))
        let messages = store.recoverInterruptedSaves()
        XCTAssertEqual(messages.count, 2, "\(messages)")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), ["checkpoint-1"])
        XCTAssertEqual(try CheckpointStore.verify(directory.appendingPathComponent("checkpoint-1")).step, 1)
    }

    func testUnwritableOrTooFullOutputIsRefused() throws {
        XCTAssertNoThrow(try CheckpointStore.prepareOutputDirectory(directory.appendingPathComponent("out"), requiredBytes: 1))
        XCTAssertThrowsError(try CheckpointStore.prepareOutputDirectory(directory.appendingPathComponent("out"), requiredBytes: Int.max / 2)) {
            XCTAssertTrue("\($0)".contains("free"), "\($0)")
        }
        // A file where the directory should be.
        try write("x", "file", in: directory)
        XCTAssertThrowsError(try CheckpointStore.prepareOutputDirectory(directory.appendingPathComponent("file/out"), requiredBytes: 1))
    }
}
