import Foundation

/// A parsed JSON value, kept exactly as written (integers stay integers), so that Hugging Face
/// files (`config.json`, safetensors headers, shard indexes) can be validated key by key with
/// messages that say what was found. Internal to Llama, so it cannot clash with other layers.
enum JSONValue: Codable, Equatable, Sendable {
    case null
    case bool(Bool)
    case integer(Int64)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    // MARK: - Codable

    init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .integer(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .integer(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }

    // MARK: - Parsing with a nesting limit

    /// Deepest nesting accepted by `parse`. Hugging Face files nest three or four levels; Foundation's
    /// `JSONDecoder` decodes this enum in time that grows steeply with depth (0.5 s at 257 levels,
    /// over 5 s near its 512 limit), so a 1 KB file of brackets would stall loading.
    static let maximumNestingDepth = 64

    /// Why `parse` refused the bytes before decoding them.
    struct NestingError: Error, CustomStringConvertible, LocalizedError {
        var depth: Int
        var description: String {
            "JSON nested more than \(depth) levels deep (arrays or objects inside each other); no Hugging Face file nests like this"
        }
        var errorDescription: String? { description }
    }

    /// Decodes JSON text, refusing text nested deeper than `maximumNestingDepth` before decoding it.
    static func parse(_ data: Data) throws -> JSONValue {
        var depth = 0
        var inString = false
        var escaped = false
        for byte in data {
            if inString {
                if escaped { escaped = false } else if byte == UInt8(ascii: "\\") { escaped = true } else if byte == UInt8(ascii: "\"") { inString = false }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                depth += 1
                if depth > maximumNestingDepth { throw NestingError(depth: maximumNestingDepth) }
            case UInt8(ascii: "]"), UInt8(ascii: "}"): depth -= 1
            default: break
            }
        }
        return try JSONDecoder().decode(JSONValue.self, from: data)
    }

    // MARK: - Typed views

    /// The value as an integer: JSON integers, and numbers with no fractional part.
    var intValue: Int? {
        switch self {
        case .integer(let value): return Int(exactly: value)
        case .number(let value): return value.rounded() == value ? Int(exactly: value) : nil
        default: return nil
        }
    }

    /// The value as a floating-point number (integers included).
    var doubleValue: Double? {
        switch self {
        case .integer(let value): return Double(value)
        case .number(let value): return value
        default: return nil
        }
    }

    var boolValue: Bool? { if case .bool(let value) = self { return value } else { return nil } }
    var stringValue: String? { if case .string(let value) = self { return value } else { return nil } }
    var arrayValue: [JSONValue]? { if case .array(let value) = self { return value } else { return nil } }
    var objectValue: [String: JSONValue]? { if case .object(let value) = self { return value } else { return nil } }
    var isNull: Bool { self == .null }

    /// A short description of the value for error messages (`"an integer (12)"`, `"a string (\"gelu\")"`).
    var kindDescription: String {
        switch self {
        case .null: return "null"
        case .bool(let value): return "a boolean (\(value))"
        case .integer(let value): return "an integer (\(value))"
        case .number(let value): return "a number (\(value))"
        case .string(let value): return "a string (\"\(value.prefix(60))\")"
        case .array(let value): return "an array of \(value.count) values"
        case .object(let value): return "an object with keys \(value.keys.sorted().prefix(8).joined(separator: ", "))"
        }
    }
}
