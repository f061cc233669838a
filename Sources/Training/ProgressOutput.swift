import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Where progress goes

/// A `TextOutputStream` over a `FileHandle` (the CLI passes `.standardError` or `.standardOutput`).
/// Each write goes straight to the file descriptor, unbuffered, so a redrawn bar appears at once.
public struct FileHandleOutputStream: TextOutputStream {
    public let handle: FileHandle

    public init(_ handle: FileHandle) { self.handle = handle }

    public mutating func write(_ string: String) {
        guard !string.isEmpty else { return }
        // A closed pipe (e.g. `| head`) must not crash the trainer; progress is best effort.
        try? handle.write(contentsOf: Data(string.utf8))
    }
}

/// How progress is rendered.
public enum ProgressMode: Sendable, Equatable {
    /// A terminal: one bar redrawn in place with `\r`.
    case interactive
    /// A file or pipe: one plain line per update (the trainer updates every `--log-every` steps).
    case plain

    /// `.interactive` if the file descriptor is a terminal (`isatty`), else `.plain`.
    public static func detect(fileDescriptor: Int32) -> ProgressMode {
        isatty(fileDescriptor) != 0 ? .interactive : .plain
    }

    /// The width of the terminal on `fileDescriptor`, or nil if it is not a terminal.
    public static func terminalColumns(fileDescriptor: Int32) -> Int? {
        var size = winsize()
        #if canImport(Glibc)
        let request = UInt(TIOCGWINSZ)
        #else
        let request = TIOCGWINSZ
        #endif
        guard ioctl(fileDescriptor, request, &size) == 0, size.ws_col > 0 else { return nil }
        return Int(size.ws_col)
    }
}
