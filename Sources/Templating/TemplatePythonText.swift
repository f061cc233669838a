import Foundation

// MARK: - Python's str() and repr()

extension TemplateValue {
    /// What `{{ value }}` prints: Python's `str(value)` (undefined prints nothing).
    public var pythonString: String {
        switch self {
        case .undefined: return ""
        case .string(let text): return text
        default: return pythonRepr
        }
    }

    /// Python's `repr(value)`: how items print inside a printed list or dict.
    var pythonRepr: String {
        switch self {
        case .undefined: return "Undefined"
        case .none: return "None"
        case .bool(let b): return b ? "True" : "False"
        case .int(let i): return String(i)
        case .double(let d): return Self.pythonFloat(d)
        case .string(let text): return Self.pythonQuoted(text)
        case .list(let items): return "[" + items.map(\.pythonRepr).joined(separator: ", ") + "]"
        case .tuple(let items):
            return items.count == 1 ? "(" + items[0].pythonRepr + ",)" : "(" + items.map(\.pythonRepr).joined(separator: ", ") + ")"
        case .dict(let dictionary):
            return "{" + dictionary.pairs.map { Self.pythonQuoted($0.key) + ": " + $0.value.pythonRepr }.joined(separator: ", ") + "}"
        case .namespace(let namespace):
            return "<Namespace " + TemplateValue.dict(namespace.attributes).pythonRepr + ">"
        case .function(let function): return "<function \(function.name)>"
        }
    }

    /// Python's float repr: shortest round-trip digits, `inf`, `nan`, exponent from 1e16 and below 1e-4.
    static func pythonFloat(_ value: Double) -> String {
        if value.isNaN { return "nan" }
        if value.isInfinite { return value < 0 ? "-inf" : "inf" }
        if value == value.rounded(), abs(value) < 1e16 {
            return String(format: "%.1f", value)
        }
        var text = "\(value)"
        if let e = text.firstIndex(of: "e") {
            // Swift writes 1e-05 like Python; make sure a sign is present after `e` as Python does.
            let exponent = text[text.index(after: e)...]
            if !exponent.hasPrefix("-") && !exponent.hasPrefix("+") { text.insert("+", at: text.index(after: e)) }
        }
        return text
    }

    /// Python's string repr: single quotes unless the text holds `'` and no `"`.
    static func pythonQuoted(_ text: String) -> String {
        let quote: Character = text.contains("'") && !text.contains("\"") ? "\"" : "'"
        var result = String(quote)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            default:
                if Character(scalar) == quote { result += "\\" + String(quote) }
                else if scalar.value < 0x20 || scalar.value == 0x7F { result += String(format: "\\x%02x", scalar.value) }
                else { result.unicodeScalars.append(scalar) }
            }
        }
        result.append(quote)
        return result
    }
}
