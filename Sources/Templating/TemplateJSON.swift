import Foundation

// MARK: - JSON in and out

/// `tojson` as transformers defines it (Python's `json.dumps(x, ensure_ascii=False, indent=None,
/// separators=None, sort_keys=False)`, no HTML escaping), and a JSON reader that keeps key order
/// (tool schemas and extra message keys reach the template in file order, as in Python).
public enum TemplateJSON {
    static func dumps(_ value: TemplateValue, _ arguments: TemplateArguments) throws -> String {
        let ensureASCII = arguments.value(0, "ensure_ascii")?.isTruthy ?? false
        var indent: String?
        switch arguments.value(1, "indent") {
        case .int(let width)?: indent = String(repeating: " ", count: max(0, width))
        case .string(let text)?: indent = text
        default: indent = nil
        }
        var itemSeparator = indent == nil ? ", " : ",", keySeparator = ": "
        if let pair = arguments.value(2, "separators")?.sequenceItems, pair.count == 2 {
            itemSeparator = pair[0].pythonString
            keySeparator = pair[1].pythonString
        }
        let format = Format(indent: indent, itemSeparator: itemSeparator, keySeparator: keySeparator,
                            sortKeys: arguments.value(3, "sort_keys")?.isTruthy ?? false, ensureASCII: ensureASCII)
        var output = ""
        try write(value, format, level: 0, into: &output)
        return output
    }

    struct Format {
        var indent: String?
        var itemSeparator: String
        var keySeparator: String
        var sortKeys: Bool
        var ensureASCII: Bool
    }

    private static func write(_ value: TemplateValue, _ format: Format, level: Int, into output: inout String) throws {
        switch value {
        case .none: output += "null"
        case .bool(let b): output += b ? "true" : "false"
        case .int(let i): output += String(i)
        case .double(let d):
            output += d.isNaN ? "NaN" : (d.isInfinite ? (d < 0 ? "-Infinity" : "Infinity") : TemplateValue.pythonFloat(d))
        case .string(let text): output += quoted(text, ensureASCII: format.ensureASCII)
        case .list(let items), .tuple(let items):
            try writeContainer(items.map { (nil, $0) }, open: "[", close: "]", format, level: level, into: &output)
        case .dict(let dictionary):
            var pairs = dictionary.pairs
            if format.sortKeys { pairs.sort { Array($0.key.utf8).lexicographicallyPrecedes(Array($1.key.utf8)) } }
            try writeContainer(pairs.map { ($0.key, $0.value) }, open: "{", close: "}", format, level: level, into: &output)
        default:
            throw TemplateError(.runtime, "Object of type \(value.typeName) is not JSON serializable")
        }
    }

    private static func writeContainer(_ entries: [(String?, TemplateValue)], open: String, close: String, _ format: Format,
                                       level: Int, into output: inout String) throws {
        guard !entries.isEmpty else { output += open + close; return }
        output += open
        let newline = format.indent.map { "\n" + String(repeating: $0, count: level + 1) }
        for (position, (key, item)) in entries.enumerated() {
            if position > 0 { output += format.itemSeparator }
            if let newline { output += newline }
            if let key { output += quoted(key, ensureASCII: format.ensureASCII) + format.keySeparator }
            try write(item, format, level: level + 1, into: &output)
        }
        if let indent = format.indent { output += "\n" + String(repeating: indent, count: level) }
        output += close
    }

    /// A JSON string literal as Python writes it (`\u00XX` for other control characters; with
    /// `ensureASCII`, `\uXXXX` and surrogate pairs for everything above 0x7F).
    static func quoted(_ text: String, ensureASCII: Bool) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case "\u{08}": result += "\\b"
            case "\u{0C}": result += "\\f"
            default:
                if scalar.value < 0x20 {
                    result += String(format: "\\u%04x", scalar.value)
                } else if ensureASCII && scalar.value > 0x7E {
                    for unit in String(scalar).utf16 { result += String(format: "\\u%04x", unit) }
                } else {
                    result.unicodeScalars.append(scalar)
                }
            }
        }
        return result + "\""
    }
}
