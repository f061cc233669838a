import Foundation

// MARK: - Python str operations

/// Python `str` methods on code points (not Swift's grapheme clusters, which would join "\r\n" and
/// compare canonically equivalent texts equal).
enum PythonString {
    /// `str.isspace` for one code point: Unicode White_Space plus the separators 0x1C-0x1F.
    static func isSpace(_ scalar: UnicodeScalar) -> Bool {
        scalar.properties.isWhitespace || (0x1C...0x1F).contains(scalar.value)
    }

    /// `strip`/`lstrip`/`rstrip`: `characters` nil strips whitespace.
    static func strip(_ text: String, _ characters: String?, leading: Bool, trailing: Bool) -> String {
        let scalars = Array(text.unicodeScalars)
        let set = characters.map { Set($0.unicodeScalars) }
        func stripped(_ scalar: UnicodeScalar) -> Bool { set?.contains(scalar) ?? isSpace(scalar) }
        var lower = 0, upper = scalars.count
        if leading { while lower < upper && stripped(scalars[lower]) { lower += 1 } }
        if trailing { while upper > lower && stripped(scalars[upper - 1]) { upper -= 1 } }
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars[lower..<upper])
        return String(view)
    }

    /// `split(sep, maxsplit)`; `sep` nil splits on whitespace runs and drops empty pieces.
    static func split(_ text: String, _ separator: String?, maxSplit: Int) -> [String] {
        guard let separator else {
            let scalars = Array(text.unicodeScalars)
            var pieces = [String](), index = 0
            func piece(_ range: Range<Int>) -> String { String(String.UnicodeScalarView(scalars[range])) }
            while true {
                while index < scalars.count && isSpace(scalars[index]) { index += 1 }
                if index == scalars.count { break }
                if maxSplit >= 0 && pieces.count == maxSplit {
                    pieces.append(piece(index..<scalars.count))
                    break
                }
                let start = index
                while index < scalars.count && !isSpace(scalars[index]) { index += 1 }
                pieces.append(piece(start..<index))
            }
            return pieces
        }
        let bytes = Array(text.utf8), needle = Array(separator.utf8)
        var pieces = [String](), start = 0, index = 0
        while index + needle.count <= bytes.count && (maxSplit < 0 || pieces.count < maxSplit) {
            if bytes[index..<index + needle.count].elementsEqual(needle) {
                pieces.append(String(decoding: bytes[start..<index], as: UTF8.self))
                index += needle.count
                start = index
            } else {
                index += 1
            }
        }
        pieces.append(String(decoding: bytes[start...], as: UTF8.self))
        return pieces
    }

    /// `replace(old, new, count)`; an empty `old` inserts `new` around every code point, as Python does.
    static func replace(_ text: String, _ old: String, _ new: String, count: Int) -> String {
        if old.isEmpty {
            var result = "", replaced = 0
            for scalar in text.unicodeScalars {
                if count < 0 || replaced < count { result += new; replaced += 1 }
                result.unicodeScalars.append(scalar)
            }
            if count < 0 || replaced < count { result += new }
            return result
        }
        let pieces = split(text, old, maxSplit: count)
        return pieces.joined(separator: new)
    }

    /// Python's `str.title()`: a letter after a non-letter is upper-cased, other letters lower-cased.
    static func title(_ text: String) -> String {
        var result = "", previousIsLetter = false
        for scalar in text.unicodeScalars {
            let isLetter = scalar.properties.isAlphabetic
            result += previousIsLetter ? String(scalar).lowercased() : String(scalar).uppercased()
            previousIsLetter = isLetter
        }
        return result
    }

    /// Python's `str.capitalize()`: first code point upper-cased, the rest lower-cased.
    static func capitalize(_ text: String) -> String {
        guard let first = text.unicodeScalars.first else { return text }
        return String(first).uppercased() + String(String.UnicodeScalarView(text.unicodeScalars.dropFirst())).lowercased()
    }

    static func startsWith(_ text: String, _ prefix: String) -> Bool { text.utf8.starts(with: prefix.utf8) }
    static func endsWith(_ text: String, _ suffix: String) -> Bool { text.utf8.reversed().starts(with: suffix.utf8.reversed()) }

    /// `str.splitlines()` (line ends dropped).
    static func splitLines(_ text: String) -> [String] {
        var lines = [String](), current = String.UnicodeScalarView()
        let breaks: Set<UInt32> = [0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x85, 0x2028, 0x2029]
        var scalars = text.unicodeScalars[...]
        while let scalar = scalars.popFirst() {
            if breaks.contains(scalar.value) {
                lines.append(String(current))
                current = String.UnicodeScalarView()
                if scalar == "\r", scalars.first == "\n" { scalars = scalars.dropFirst() }
            } else {
                current.append(scalar)
            }
        }
        if !current.isEmpty { lines.append(String(current)) }
        return lines
    }

    /// Code-point index of `needle` in `text`, or -1 (`str.find`).
    static func find(_ text: String, _ needle: String, reverse: Bool) -> Int {
        let scalars = Array(text.unicodeScalars), target = Array(needle.unicodeScalars)
        guard target.count <= scalars.count else { return -1 }
        let starts = Array(0...(scalars.count - target.count))
        for start in reverse ? starts.reversed() : starts where scalars[start..<start + target.count].elementsEqual(target) {
            return start
        }
        return -1
    }
}
