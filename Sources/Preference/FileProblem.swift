import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Why a path cannot be read as what a command expects, in words (one line, no Foundation
/// "The operation could not be completed" / NSCocoaErrorDomain texts): `nil` when it can.
/// Data readers call `file(_:)` before reading; model loaders call `directory(_:)`.
public enum FileProblem {

    /// Why `path` is not a readable regular file.
    public static func file(_ path: String) -> String? {
        var info = stat()
        guard stat(path, &info) == 0 else { return missing(path, errno: errno, absent: "file does not exist") }
        switch info.st_mode & S_IFMT {
        case S_IFREG: break
        case S_IFDIR: return "is a directory, not a file; give a JSONL or JSON file"
        default: return "not a regular file (\(kind(info.st_mode))); give a JSONL or JSON file"
        }
        return access(path, R_OK) == 0 ? nil : "permission denied: this user cannot read it"
    }

    /// Why `path` is not a readable directory.
    public static func directory(_ path: String) -> String? {
        var info = stat()
        guard stat(path, &info) == 0 else { return missing(path, errno: errno, absent: "no such directory") }
        guard info.st_mode & S_IFMT == S_IFDIR else {
            return info.st_mode & S_IFMT == S_IFREG ? "is a file, not a directory" : "not a directory (\(kind(info.st_mode)))"
        }
        return access(path, R_OK | X_OK) == 0 ? nil : "permission denied: this user cannot list it"
    }

    /// The cause of a failed `stat`, naming the path component at fault.
    static func missing(_ path: String, errno code: Int32, absent: String) -> String {
        switch code {
        case ELOOP: return "symbolic link loop (a link on the path leads back to itself)"
        case EACCES: return "permission denied: a directory on the path cannot be searched"
        case ENOENT, ENOTDIR:
            // The nearest existing ancestor: a file there is why the rest cannot exist.
            var ancestor = (path as NSString).deletingLastPathComponent
            while !ancestor.isEmpty, ancestor != "/" {
                var info = stat()
                if stat(ancestor, &info) == 0 {
                    if info.st_mode & S_IFMT != S_IFDIR { return "\(absent): \(ancestor) is a file, not a directory" }
                    break
                }
                ancestor = (ancestor as NSString).deletingLastPathComponent
            }
            return absent
        default: return String(cString: strerror(code))
        }
    }

    static func kind(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFIFO: return "a named pipe"
        case S_IFSOCK: return "a socket"
        default: return "not a file"
        }
    }

    /// Foundation's error in one line: its debug description (JSON: "Garbage at end around
    /// line 2, column 0.") or POSIX cause rather than "The operation could not be completed".
    /// With the `bytes` parsed, "around character N" also names N's line.
    public static func cause(of error: Error, in bytes: [UInt8]? = nil) -> String {
        if let decodingError = error as? DecodingError { return decoding(decodingError, in: bytes) }
        let ns = error as NSError
        if var debug = ns.userInfo[NSDebugDescriptionErrorKey] as? String, !debug.isEmpty {
            if let bytes, let range = debug.range(of: #"character \d+"#, options: .regularExpression),
               let offset = Int(debug[range].dropFirst("character ".count)) {
                let line = bytes.prefix(offset).reduce(1) { $0 + ($1 == 0x0A ? 1 : 0) }
                debug.replaceSubrange(range, with: "character \(offset) (line \(line))")
            }
            return debug
        }
        if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(underlying.code)))
        }
        return ns.localizedDescription.replacingOccurrences(of: "The operation could not be completed. ", with: "")
    }
}
