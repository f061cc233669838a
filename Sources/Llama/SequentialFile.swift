import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A file written front to back with large `write(2)` calls straight from the caller's memory
/// (no intermediate copies, no per-chunk allocations) and flushed with one `fsync`: how
/// checkpoints reach the disk. Errors name the file (`reportedAs`) and the system's reason.
/// An observer sees every byte in order (a checkpoint digests its files this way).
final class SequentialFile {
    /// Largest single `write` (Linux moves at most ~2 GiB per call).
    static let maximumWrite = 64 << 20

    private var descriptor: Int32
    private let path: String
    private let reportedAs: String
    private(set) var bytesWritten = 0
    private let observer: FileContentsObserver?

    /// Creates (or truncates) `url`, mode 0644.
    init(creating url: URL, reportedAs: String, observer: FileContentsObserver? = nil) throws {
        path = url.path
        self.reportedAs = reportedAs
        self.observer = observer
        descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw Self.failure(reportedAs, "cannot create \(path)", errno) }
        observer?.begin(url)
    }

    /// Appends `bytes`.
    func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard var next = bytes.baseAddress else { return }
        observer?.consume(bytes)
        var left = bytes.count
        while left > 0 {
            let written = Glibc.write(descriptor, next, min(left, Self.maximumWrite))
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { throw Self.failure(reportedAs, "writing \(path) failed", written < 0 ? errno : ENOSPC) }
            next += written
            left -= written
            bytesWritten += written
        }
    }

    /// Waits until the written bytes are on the disk (`fsync`).
    func synchronize() throws {
        while fsync(descriptor) != 0 {
            guard errno == EINTR else { throw Self.failure(reportedAs, "fsync of \(path) failed", errno) }
        }
        observer?.end(URL(fileURLWithPath: path), descriptor: descriptor)
    }

    func close() {
        if descriptor >= 0 { _ = Glibc.close(descriptor) }
        descriptor = -1
    }

    deinit { close() }

    private static func failure(_ file: String, _ what: String, _ code: Int32) -> SafetensorsError {
        SafetensorsError(.writeFailed, file: file, "\(what): \(String(cString: strerror(code)))")
    }
}

/// Sees the bytes of each file a writer produces, in order, and the file once it is complete
/// and on disk: `CheckpointDigests` digests checkpoint files this way instead of reading
/// 2 GB back for the manifest.
public protocol FileContentsObserver: AnyObject {
    /// A new file (at its temporary path) starts.
    func begin(_ url: URL)
    func consume(_ bytes: UnsafeRawBufferPointer)
    /// The file is complete and fsync'd; `descriptor` is still open (`fstat` names the file
    /// whatever it is renamed to).
    func end(_ url: URL, descriptor: Int32)
}
