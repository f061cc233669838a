import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Whole-file writes that never leave a half-written file under the final name:
/// the bytes go to a temporary file in the same directory, which is then renamed over
/// the destination (`rename(2)` is atomic within one file system).
enum AtomicFile {
    /// A temporary path next to `url` (same directory, so the rename stays on one file system).
    static func temporaryURL(for url: URL) -> URL {
        url.deletingLastPathComponent()
            .appendingPathComponent(".\(url.lastPathComponent).tmp-\(UUID().uuidString.prefix(8))")
    }

    static func write(_ data: Data, to url: URL) throws {
        try write(to: url) { temporary in try data.write(to: temporary) }
    }

    /// Lets `produce` write the temporary file, then renames it to `url`; the temporary file
    /// is removed if anything fails.
    static func write(to url: URL, _ produce: (URL) throws -> Void) throws {
        let temporary = temporaryURL(for: url)
        do {
            try produce(temporary)
            guard rename(temporary.path, url.path) == 0 else {
                let reason = String(cString: strerror(errno))
                throw CocoaError(.fileWriteUnknown, userInfo: [NSLocalizedDescriptionKey: "cannot rename \(temporary.path) to \(url.path): \(reason)"])
            }
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            throw error
        }
    }
}
