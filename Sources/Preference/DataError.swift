import Foundation

// MARK: - Dataset errors

/// A problem with a dataset file, naming the file, the line (or array element), the key and what to do.
public struct DataError: Error, LocalizedError, CustomStringConvertible, Equatable, Sendable {
    /// Where in the file.
    public enum Location: Equatable, Sendable {
        case file
        case line(Int)
        case element(Int)
    }

    public var file: String
    public var location: Location
    public var key: String?
    public var problem: String
    /// Whether the text ends by offering `--skip-invalid`: only where that flag would help, i.e. a
    /// record the reader could skip, met without the flag (false once the flag was given, and for
    /// encoding problems, which skipping does not reach).
    public var suggestsSkipping: Bool

    public init(file: String, location: Location, key: String? = nil, problem: String, suggestsSkipping: Bool = true) {
        self.file = file
        self.location = location
        self.key = key
        self.problem = problem
        self.suggestsSkipping = suggestsSkipping
    }

    public var description: String {
        var text = file
        switch location {
        case .file: break
        case .line(let line): text += ":\(line)"
        case .element(let index): text += " (array element \(index))"
        }
        if let key { text += ": key '\(key)'" }
        text += ": \(problem)"
        if location != .file && suggestsSkipping { text += " (fix it, or pass --skip-invalid to skip such lines)" }
        return text
    }

    public var errorDescription: String? { description }
}
