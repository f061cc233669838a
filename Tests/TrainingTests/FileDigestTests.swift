import Foundation
import XCTest
@testable import Training

/// `SHA256.hexOfFile` reads through one reused buffer: the digest of a file spanning several
/// buffers equals the digest of its bytes in memory; a missing file is named.
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
}
