import Foundation

// MARK: - JSON reader keeping key order

extension TemplateJSON {
    /// Why a JSON text could not be read.
    public struct ParseError: Error, CustomStringConvertible {
        public var offset: Int
        public var problem: String
        public var description: String { "invalid JSON at byte \(offset): \(problem)" }
    }

    /// The value of a JSON text; objects keep their key order, integers stay integers.
    public static func parse(_ text: String) throws -> TemplateValue {
        var reader = Reader(bytes: Array(text.utf8))
        let value = try reader.value()
        reader.skipWhitespace()
        guard reader.position == reader.bytes.count else { throw reader.failure("trailing characters") }
        return value
    }

    private struct Reader {
        let bytes: [UInt8]
        var position = 0

        func failure(_ problem: String) -> ParseError { ParseError(offset: position, problem: problem) }

        mutating func skipWhitespace() {
            while position < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[position]) { position += 1 }
        }

        mutating func value() throws -> TemplateValue {
            skipWhitespace()
            guard position < bytes.count else { throw failure("unexpected end") }
            switch bytes[position] {
            case UInt8(ascii: "{"): return try object()
            case UInt8(ascii: "["): return try array()
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"): return try literal("true", .bool(true))
            case UInt8(ascii: "f"): return try literal("false", .bool(false))
            case UInt8(ascii: "n"): return try literal("null", .none)
            default: return try number()
            }
        }

        mutating func literal(_ word: String, _ value: TemplateValue) throws -> TemplateValue {
            let wordBytes = Array(word.utf8)
            guard position + wordBytes.count <= bytes.count, Array(bytes[position..<position + wordBytes.count]) == wordBytes else {
                throw failure("unexpected character")
            }
            position += wordBytes.count
            return value
        }

        mutating func object() throws -> TemplateValue {
            position += 1
            var dictionary = TemplateDictionary()
            skipWhitespace()
            if position < bytes.count && bytes[position] == UInt8(ascii: "}") { position += 1; return .dict(dictionary) }
            while true {
                skipWhitespace()
                guard position < bytes.count, bytes[position] == UInt8(ascii: "\"") else { throw failure("expected a key") }
                let key = try string()
                skipWhitespace()
                guard position < bytes.count, bytes[position] == UInt8(ascii: ":") else { throw failure("expected ':'") }
                position += 1
                dictionary[key] = try value()
                skipWhitespace()
                guard position < bytes.count else { throw failure("unexpected end") }
                position += 1
                if bytes[position - 1] == UInt8(ascii: "}") { return .dict(dictionary) }
                guard bytes[position - 1] == UInt8(ascii: ",") else { throw failure("expected ',' or '}'") }
            }
        }

        mutating func array() throws -> TemplateValue {
            position += 1
            var items = [TemplateValue]()
            skipWhitespace()
            if position < bytes.count && bytes[position] == UInt8(ascii: "]") { position += 1; return .list(items) }
            while true {
                items.append(try value())
                skipWhitespace()
                guard position < bytes.count else { throw failure("unexpected end") }
                position += 1
                if bytes[position - 1] == UInt8(ascii: "]") { return .list(items) }
                guard bytes[position - 1] == UInt8(ascii: ",") else { throw failure("expected ',' or ']'") }
            }
        }

        mutating func string() throws -> String {
            position += 1
            var units = [UInt16]()
            var raw = [UInt8]()
            var result = ""
            func flush() {
                if !raw.isEmpty { result += String(decoding: raw, as: UTF8.self); raw.removeAll() }
                if !units.isEmpty { result += String(decoding: units, as: UTF16.self); units.removeAll() }
            }
            while position < bytes.count {
                let byte = bytes[position]
                position += 1
                if byte == UInt8(ascii: "\"") { flush(); return result }
                guard byte == UInt8(ascii: "\\") else {
                    if !units.isEmpty { flush() }
                    raw.append(byte)
                    continue
                }
                guard position < bytes.count else { break }
                let escape = bytes[position]
                position += 1
                if escape == UInt8(ascii: "u") {
                    guard position + 4 <= bytes.count,
                          let unit = UInt16(String(decoding: bytes[position..<position + 4], as: UTF8.self), radix: 16) else {
                        throw failure("bad \\u escape")
                    }
                    position += 4
                    if !raw.isEmpty { flush() }
                    units.append(unit)
                    continue
                }
                if !units.isEmpty { flush() }
                switch escape {
                case UInt8(ascii: "n"): raw.append(0x0A)
                case UInt8(ascii: "t"): raw.append(0x09)
                case UInt8(ascii: "r"): raw.append(0x0D)
                case UInt8(ascii: "b"): raw.append(0x08)
                case UInt8(ascii: "f"): raw.append(0x0C)
                case UInt8(ascii: "/"), UInt8(ascii: "\\"), UInt8(ascii: "\""): raw.append(escape)
                default: throw failure("bad escape")
                }
            }
            throw failure("unterminated string")
        }

        mutating func number() throws -> TemplateValue {
            let start = position
            while position < bytes.count, "+-0123456789.eE".utf8.contains(bytes[position]) { position += 1 }
            let text = String(decoding: bytes[start..<position], as: UTF8.self)
            if !text.contains(where: { $0 == "." || $0 == "e" || $0 == "E" }), let integer = Int(text) { return .int(integer) }
            guard let double = Double(text) else { throw failure("bad number '\(text)'") }
            return .double(double)
        }
    }
}
