import Crypto
import Foundation

/// Streaming SHA-256 for checkpoint manifests, model fingerprints and cache keys: a thin
/// wrapper over swift-crypto's (BoringSSL's, SHA-NI/AVX2 where the CPU has them), so a
/// 2 GB checkpoint is hashed in about a second. Verified against the FIPS test vectors in
/// CheckpointStoreTests.
public struct SHA256 {
    private var hasher = Crypto.SHA256()

    public init() {}

    /// Feeds bytes.
    public mutating func update(_ bytes: UnsafeRawBufferPointer) { hasher.update(bufferPointer: bytes) }

    public mutating func update(_ data: Data) { hasher.update(data: data) }

    /// The 32-byte digest (the hasher should not be used afterwards).
    public mutating func finalize() -> [UInt8] { Array(hasher.finalize()) }

    /// Lower-case hex digest of `data`.
    public static func hex(_ data: Data) -> String {
        var hasher = SHA256()
        hasher.update(data)
        return hexString(hasher.finalize())
    }

    /// Lower-case hex digest and size of a file, read in 8 MiB chunks.
    public static func hexOfFile(at url: URL) throws -> (digest: String, bytes: Int) {
        let handle = try FileHandle(forReadingFrom: url)
        defer { try? handle.close() }
        var hasher = SHA256()
        var size = 0
        while let chunk = try handle.read(upToCount: 8 << 20), !chunk.isEmpty {
            hasher.update(chunk)
            size += chunk.count
        }
        return (hexString(hasher.finalize()), size)
    }

    static func hexString(_ digest: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var text = [UInt8]()
        text.reserveCapacity(2 * digest.count)
        for byte in digest {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 15)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}
