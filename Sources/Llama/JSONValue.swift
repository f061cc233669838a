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
