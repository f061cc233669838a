import Crypto
import Foundation

/// SHA-256, streaming, for checkpoint manifests, fingerprints and cache keys: a thin wrapper
/// over swift-crypto's `Crypto.SHA256` that keeps the project's API (bytes in, `[UInt8]` or
/// lower-case hex out). Checked against the FIPS 180-4 vectors in CheckpointStoreTests.
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
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }

    /// Lower-case hex digest and size of a file, read in 4 MiB chunks.
    public static func hexOfFile(at url: URL) throws -> (digest: String, bytes: Int) {
        let handle = try FileHandle(forReadingFrom: url)
        defer { try? handle.close() }
        var hasher = SHA256()
        var size = 0
        while let chunk = try handle.read(upToCount: 4 << 20), !chunk.isEmpty {
            hasher.update(chunk)
            size += chunk.count
        }
        return (hasher.finalize().map { String(format: "%02x", $0) }.joined(), size)
    }
}
