import Foundation

// MARK: - Less common filters: numbers, ordering, layout

extension TemplateEvaluator {
    func callMoreFilter(_ name: String, _ value: TemplateValue, _ arguments: TemplateArguments) throws -> TemplateValue {
        switch name {
        case "abs":
            switch value {
            case .int(let i): return .int(abs(i))
            case .bool(let b): return .int(b ? 1 : 0)
            case .double(let d): return .double(abs(d))
            default: throw error(.runtime, "bad operand type for abs(): '\(value.typeName)'")
            }
        case "round": return try round(value, arguments)
        case "reverse":
            if case .string(let text) = value { return .string(String(String.UnicodeScalarView(text.unicodeScalars.reversed()))) }
            return .list(try iterate(value).reversed())
        case "unique":
            let attribute = arguments.value(1, "attribute")
            let caseSensitive = arguments.value(0, "case_sensitive")?.isTruthy ?? false
            var seenKeys = [TemplateValue](), kept = [TemplateValue]()
            for item in try iterate(value) {
                let key = try sortKey(item, attribute, caseSensitive: caseSensitive)
                if !seenKeys.contains(where: { $0.pythonEquals(key) }) {
                    seenKeys.append(key)
                    kept.append(item)
                }
            }
            return .list(kept)
        case "sort":
            let attribute = arguments.value(2, "attribute")
            let caseSensitive = arguments.value(1, "case_sensitive")?.isTruthy ?? false
            let sorted = try sortValues(try iterate(value)) { try self.sortKey($0, attribute, caseSensitive: caseSensitive) }
            return .list((arguments.value(0, "reverse")?.isTruthy ?? false) ? sorted.reversed() : sorted)
        case "dictsort":
            guard case .dict(let dictionary) = value else { throw error(.runtime, "dictsort needs a mapping") }
            let byValue = arguments.value(1, "by")?.pythonString == "value"
            let caseSensitive = arguments.value(0, "case_sensitive")?.isTruthy ?? false
            let pairs: [TemplateValue] = dictionary.pairs.map { .tuple([.string($0.key), $0.value]) }
            let sorted = try sortValues(pairs) { pair in
                try self.sortKey(try self.itemOf(pair, .int(byValue ? 1 : 0)), nil, caseSensitive: caseSensitive)
            }
            return .list((arguments.value(2, "reverse")?.isTruthy ?? false) ? sorted.reversed() : sorted)
        case "sum":
            var total = arguments.value(1, "start") ?? .int(0)
            for item in try iterate(value) {
                total = try binaryOperation("+", total, try arguments.value(0, "attribute").map { try lookupPath(item, $0) } ?? item)
            }
            return total
        case "min", "max":
            let caseSensitive = arguments.value(0, "case_sensitive")?.isTruthy ?? false
            let sorted = try sortValues(try iterate(value)) { try self.sortKey($0, arguments.value(1, "attribute"), caseSensitive: caseSensitive) }
            return (name == "min" ? sorted.first : sorted.last) ?? .undefined(hint: "No \(name) item, sequence was empty.")
        case "indent": return .string(indent(value.pythonString, arguments))
        case "safe": return value
        case "escape", "e", "forceescape": return .string(Self.htmlEscaped(value.pythonString))
        case "attr":
            guard case .string(let attribute)? = arguments.value(0, "name") else { throw error(.runtime, "attr needs a name") }
            if let method = try boundMethod(value, attribute) { return method }
            if case .namespace(let namespace) = value { return namespace.attributes[attribute] ?? .undefined(hint: "no attribute '\(attribute)'") }
            return .undefined(hint: "\(value.objectDescription) has no attribute '\(attribute)'")
        case "wordcount": return .int(PythonString.split(value.pythonString, nil, maxSplit: -1).count)
        case "center":
            let text = value.pythonString, width = arguments.value(0, "width")?.integer ?? 80
            let padding = max(0, width - text.unicodeScalars.count)
            let left = padding / 2 + (padding & width & 1)  // CPython's str.center rounding
            return .string(String(repeating: " ", count: left) + text + String(repeating: " ", count: padding - left))
        default:
            throw error(.unsupported, "the filter '\(name)'")
        }
    }

    private func round(_ value: TemplateValue, _ arguments: TemplateArguments) throws -> TemplateValue {
        guard let number = value.number else { throw error(.runtime, "round needs a number") }
        let precision = arguments.value(0, "precision")?.integer ?? 0
        let method = arguments.value(1, "method")?.pythonString ?? "common"
        let scale = Foundation.pow(10.0, Double(precision))
        switch method {
        case "common":  // Python's round(): halves go to the even neighbour
            return .double((number * scale).rounded(.toNearestOrEven) / scale)
        case "ceil": return .double((number * scale).rounded(.up) / scale)
        case "floor": return .double((number * scale).rounded(.down) / scale)
        default: throw error(.runtime, "method must be common, ceil or floor")
        }
    }

    /// The key Jinja2 sorts by: the attribute (if any), strings lower-cased unless case-sensitive.
    private func sortKey(_ item: TemplateValue, _ attribute: TemplateValue?, caseSensitive: Bool) throws -> TemplateValue {
        let key = try attribute.map { try lookupPath(item, $0) } ?? item
        if !caseSensitive, case .string(let text) = key { return .string(text.lowercased()) }
        return key
    }

    /// A stable sort by `key` with Python's ordering (an error for unorderable mixes).
    private func sortValues(_ items: [TemplateValue], key: (TemplateValue) throws -> TemplateValue) throws -> [TemplateValue] {
        let keyed = try items.map { (key: try key($0), value: $0) }
        var failure: TemplateError?
        let sorted = keyed.enumerated().sorted { a, b in
            do {
                guard let order = try ordering(a.element.key, b.element.key) else {
                    failure = error(.runtime, "'<' not supported between instances of '\(a.element.key.typeName)' and '\(b.element.key.typeName)'")
                    return false
                }
                return order != 0 ? order < 0 : a.offset < b.offset
            } catch {
                failure = error as? TemplateError
                return false
            }
        }
        if let failure { throw failure }
        return sorted.map(\.element.value)
    }

    /// Jinja2's `indent(width=4, first=False, blank=False)`: every line after the first gets the indent
    /// (blank lines only when `blank`).
    private func indent(_ text: String, _ arguments: TemplateArguments) -> String {
        let width = arguments.value(0, "width")
        let indentation: String
        if case .string(let given)? = width { indentation = given } else { indentation = String(repeating: " ", count: width?.integer ?? 4) }
        let first = arguments.value(1, "first")?.isTruthy ?? false
        let blank = arguments.value(2, "blank")?.isTruthy ?? false
        var lines = PythonString.splitLines(text + "\n")
        var result: String
        if blank {
            result = lines.joined(separator: "\n" + indentation)
        } else {
            result = lines.isEmpty ? "" : lines.removeFirst()
            if !lines.isEmpty { result += "\n" + lines.map { $0.isEmpty ? $0 : indentation + $0 }.joined(separator: "\n") }
        }
        return first ? indentation + result : result
    }

    static func htmlEscaped(_ text: String) -> String {
        var result = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": result += "&amp;"
            case "<": result += "&lt;"
            case ">": result += "&gt;"
            case "\"": result += "&#34;"
            case "'": result += "&#39;"
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result
    }
}
