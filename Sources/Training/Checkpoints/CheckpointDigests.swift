import Foundation
import Llama
#if canImport(Glibc)
import Glibc
#endif

/// SHA-256 of checkpoint files taken as they are written (a `FileContentsObserver` given to
/// the safetensors writer), so the manifest need not read the 2 GB of a 135M-parameter
/// checkpoint back: on a host short of memory that read comes from disk again.
///
/// A file is recognised by what `stat` says once it is written (device, inode, size and
/// modification time to the nanosecond), which a rename keeps and any later write changes;
/// a file it does not recognise is hashed from disk as before.
public final class CheckpointDigests: FileContentsObserver {
    struct Identity: Hashable {
        let device: UInt64
        let inode: UInt64
        let size: Int
        let modifiedSeconds: Int
        let modifiedNanoseconds: Int

        init(_ info: stat) {
            device = UInt64(info.st_dev)
            inode = UInt64(info.st_ino)
            size = Int(info.st_size)
            modifiedSeconds = Int(info.st_mtim.tv_sec)
            modifiedNanoseconds = Int(info.st_mtim.tv_nsec)
        }
    }

    private var hasher: SHA256?
    private var size = 0
    private var known: [Identity: CheckpointManifest.FileEntry] = [:]

    public init() {}

    public func begin(_ url: URL) {
        hasher = SHA256()
        size = 0
    }

    public func consume(_ bytes: UnsafeRawBufferPointer) {
        hasher?.update(bytes)
        size += bytes.count
    }

    public func end(_ url: URL, descriptor: Int32) {
        guard var finished = hasher else { return }
        hasher = nil
        var info = stat()
        guard fstat(descriptor, &info) == 0, Int(info.st_size) == size else { return }
        known[Identity(info)] = CheckpointManifest.FileEntry(bytes: size, sha256: finished.finalize().map { String(format: "%02x", $0) }.joined())
    }

    /// The manifest entry of `url`: the digest taken while it was written when the file is
    /// still exactly that one, else read from disk.
    func entry(of url: URL) throws -> CheckpointManifest.FileEntry {
        var info = stat()
        if stat(url.path, &info) == 0, let entry = known[Identity(info)] { return entry }
        let (digest, bytes) = try SHA256.hexOfFile(at: url)
        return CheckpointManifest.FileEntry(bytes: bytes, sha256: digest)
    }

    /// How many files were digested on the way out (for tests).
    var count: Int { known.count }
}
