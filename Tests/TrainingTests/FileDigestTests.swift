import Foundation
import Llama
import XCTest
@testable import Training

/// `SHA256.hexOfFile` reads through one reused buffer: the digest of a file spanning several
/// buffers equals the digest of its bytes in memory; a missing file is named. `CheckpointDigests`
/// digests safetensors files as they are written, and the manifest uses those digests only for
/// the very files written (renamed or not), rehashing any file changed since.
final class FileDigestTests: XCTestCase {
    func testFileDigestEqualsInMemoryDigestAcrossBuffers() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("digest-\(UUID().uuidString)")
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        // 8 MiB buffers: two full ones and a partial third.
        let count = 2 * (8 << 20) + 12_345
        let bytes = Data((0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 11) })
        try bytes.write(to: url)
        let (digest, size) = try SHA256.hexOfFile(at: url)
        XCTAssertEqual(size, count)
        XCTAssertEqual(digest, SHA256.hex(bytes))

        try Data().write(to: url)
        XCTAssertEqual(try SHA256.hexOfFile(at: url).digest, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")

        let missing = url.appendingPathExtension("missing")
        XCTAssertThrowsError(try SHA256.hexOfFile(at: missing)) { error in
            XCTAssertTrue(error.localizedDescription.contains(missing.path), error.localizedDescription)
        }
    }

    func testDigestsTakenWhileWritingMatchTheFilesAndChangedFilesAreRehashed() throws {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("digests-\(UUID().uuidString)")
        addTeardownBlock { try? FileManager.default.removeItem(at: output) }
        let store = CheckpointStore(outputDirectory: output)
        let values = (0..<300_000).map { Float($0 % 977) * 0.25 }
        for tamper in [false, true] {
            let digests = CheckpointDigests()
            let saved = try store.save(name: "checkpoint-\(tamper ? 2 : 1)", step: 1, digests: digests) { directory in
                try values.withUnsafeBufferPointer { buffer in
                    try SafetensorsWriter.write(
                        [SafetensorsTensorSource(name: "w", shape: [values.count], values: buffer)], dtype: .BF16,
                        to: directory.appendingPathComponent("model.safetensors"), observer: digests)
                }
                try Data("{}".utf8).write(to: directory.appendingPathComponent("state.json"))
                if tamper {
                    // Changed after it was written: its digest must come from the disk.
                    let handle = try FileHandle(forWritingTo: directory.appendingPathComponent("model.safetensors"))
                    try handle.seekToEnd()
                    try handle.write(contentsOf: Data([1]))
                    try handle.close()
                }
            }
            XCTAssertEqual(digests.count, 1)
            let manifest = try CheckpointStore.verify(saved)
            for name in ["model.safetensors", "state.json"] {
                let (digest, bytes) = try SHA256.hexOfFile(at: saved.appendingPathComponent(name))
                XCTAssertEqual(manifest.files[name], CheckpointManifest.FileEntry(bytes: bytes, sha256: digest), "\(name) tampered \(tamper)")
            }
        }
    }
}
