import Foundation

// MARK: - A JSON tree the fuzz mutator can edit

/// A JSON document as a tree that keeps what the fuzz tests need to mutate it faithfully:
/// object members in written order (duplicates allowed), numbers as their literal text (so
/// `1e400` or `18446744073709551616` survive unchanged), and `raw` fragments written verbatim
/// (to inject text no well-formed tree holds: lone surrogate escapes, `NaN`, 5,000 nested brackets).
public indirect enum FuzzJSON {
    case null
    case bool(Bool)
    /// The number's literal text.
    case number(String)
    case string(String)
    case array([FuzzJSON])
    case object([(key: String, value: FuzzJSON)])
    /// Written as is.
    case raw(String)

    // MARK: - Parsing

    /// Parses well-formed JSON (the valid inputs the mutations start from); nil if it is not.
    public static func parse(_ bytes: [UInt8]) -> FuzzJSON? {
        var parser = Parser(bytes: bytes)
        guard let value = parser.value() else { return nil }
        parser.skipWhitespace()
        return parser.position == bytes.count ? value : nil
    }

    private struct Parser {
        let bytes: [UInt8]
        var position = 0
        var depth = 0

        mutating func skipWhitespace() {
            while position < bytes.count, [0x20, 0x0A, 0x0D, 0x09].contains(bytes[position]) { position += 1 }
        }

        mutating func literal(_ text: String) -> Bool {
            let expected = Array(text.utf8)
            guard position + expected.count <= bytes.count,
                  Array(bytes[position..<(position + expected.count)]) == expected else { return false }
            position += expected.count
            return true
        }

        mutating func value() -> FuzzJSON? {
            skipWhitespace()
            guard position < bytes.count, depth < 1_000 else { return nil }
            switch bytes[position] {
            case UInt8(ascii: "n"): return literal("null") ? .null : nil
            case UInt8(ascii: "t"): return literal("true") ? .bool(true) : nil
            case UInt8(ascii: "f"): return literal("false") ? .bool(false) : nil
            case UInt8(ascii: "\""): return string().map { .string($0) }
            case UInt8(ascii: "["):
                position += 1
                depth += 1
                defer { depth -= 1 }
                var elements: [FuzzJSON] = []
                skipWhitespace()
                if literal("]") { return .array(elements) }
                while true {
                    guard let element = value() else { return nil }
                    elements.append(element)
                    skipWhitespace()
                    if literal("]") { return .array(elements) }
                    guard literal(",") else { return nil }
                }
            case UInt8(ascii: "{"):
                position += 1
                depth += 1
                defer { depth -= 1 }
                var members: [(key: String, value: FuzzJSON)] = []
                skipWhitespace()
                if literal("}") { return .object(members) }
                while true {
                    skipWhitespace()
                    guard let key = string() else { return nil }
                    skipWhitespace()
                    guard literal(":"), let member = value() else { return nil }
                    members.append((key, member))
                    skipWhitespace()
                    if literal("}") { return .object(members) }
                    guard literal(",") else { return nil }
                }
            default:
                let start = position
                while position < bytes.count, "+-0123456789.eE".utf8.contains(bytes[position]) { position += 1 }
                guard position > start else { return nil }
                return .number(String(decoding: bytes[start..<position], as: UTF8.self))
            }
        }

        mutating func hex4() -> UInt32? {
            guard position + 4 <= bytes.count,
                  let value = UInt32(String(decoding: bytes[position..<(position + 4)], as: UTF8.self), radix: 16)
            else { return nil }
            position += 4
            return value
        }

        mutating func string() -> String? {
            guard literal("\"") else { return nil }
            var scalars = String.UnicodeScalarView()
            var run: [UInt8] = []
            func flush() {
                scalars.append(contentsOf: String(decoding: run, as: UTF8.self).unicodeScalars)
                run.removeAll()
            }
            while position < bytes.count {
                let byte = bytes[position]
                position += 1
                if byte == UInt8(ascii: "\"") {
                    flush()
                    return String(scalars)
                }
                guard byte == UInt8(ascii: "\\") else {
                    run.append(byte)
                    continue
                }
                flush()
                guard position < bytes.count else { return nil }
                let escape = bytes[position]
                position += 1
                switch escape {
                case UInt8(ascii: "n"): scalars.append("\n")
                case UInt8(ascii: "t"): scalars.append("\t")
                case UInt8(ascii: "r"): scalars.append("\r")
                case UInt8(ascii: "b"): scalars.append("\u{08}")
                case UInt8(ascii: "f"): scalars.append("\u{0C}")
                case UInt8(ascii: "u"):
                    guard var code = hex4() else { return nil }
                    if (0xD800..<0xDC00).contains(code), literal("\\u"), let low = hex4() {
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    }
                    scalars.append(Unicode.Scalar(code) ?? "\u{FFFD}")
                default: scalars.append(Unicode.Scalar(escape))
                }
            }
            return nil
        }
    }

    // MARK: - Writing

    /// Compact JSON text (object members in order, numbers and raw fragments verbatim).
    public var text: String {
        var output = ""
        write(into: &output)
        return output
    }

    public var bytes: [UInt8] { Array(text.utf8) }

    private func write(into output: inout String) {
        switch self {
        case .null: output += "null"
        case .bool(let value): output += value ? "true" : "false"
        case .number(let literal): output += literal
        case .raw(let fragment): output += fragment
        case .string(let value): Self.writeString(value, into: &output)
        case .array(let elements):
            output += "["
            for (index, element) in elements.enumerated() {
                if index > 0 { output += "," }
                element.write(into: &output)
            }
            output += "]"
        case .object(let members):
            output += "{"
            for (index, member) in members.enumerated() {
                if index > 0 { output += "," }
                Self.writeString(member.key, into: &output)
                output += ":"
                member.value.write(into: &output)
            }
            output += "}"
        }
    }

    private static func writeString(_ value: String, into output: inout String) {
        output += "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": output += "\\\""
            case "\\": output += "\\\\"
            case "\n": output += "\\n"
            case "\r": output += "\\r"
            case "\t": output += "\\t"
            default:
                if scalar.value < 0x20 {
                    output += String(format: "\\u%04x", scalar.value)
                } else {
                    output.unicodeScalars.append(scalar)
                }
            }
        }
        output += "\""
    }

    // MARK: - Paths

    /// Every node's path (indices into arrays / member lists), the root first.
    public var paths: [[Int]] {
        var result: [[Int]] = [[]]
        switch self {
        case .array(let elements):
            for (index, element) in elements.enumerated() { result += element.paths.map { [index] + $0 } }
        case .object(let members):
            for (index, member) in members.enumerated() { result += member.value.paths.map { [index] + $0 } }
        default: break
        }
        return result
    }

    /// The node at `path`.
    public subscript(path: ArraySlice<Int>) -> FuzzJSON {
        get {
            guard let first = path.first else { return self }
            switch self {
            case .array(let elements): return elements[first][path.dropFirst()]
            case .object(let members): return members[first].value[path.dropFirst()]
            default: return self
            }
        }
        set {
            guard let first = path.first else {
                self = newValue
                return
            }
            switch self {
            case .array(var elements):
                elements[first][path.dropFirst()] = newValue
                self = .array(elements)
            case .object(var members):
                members[first].value[path.dropFirst()] = newValue
                self = .object(members)
            default: self = newValue
            }
        }
    }
}
