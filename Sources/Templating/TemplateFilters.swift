import Foundation

// MARK: - Filters (`value | name(args)`)

extension TemplateEvaluator {
    /// The Jinja2 filters this engine implements (names checked when a template is parsed).
    static let filterNames: Set<String> = [
        "trim", "tojson", "length", "count", "upper", "lower", "capitalize", "title", "replace", "join", "first", "last",
        "default", "d", "items", "selectattr", "rejectattr", "select", "reject", "map", "string", "int", "float", "list",
        "abs", "round", "unique", "reverse", "sort", "dictsort", "sum", "min", "max", "indent", "safe", "escape", "e",
        "forceescape", "attr", "wordcount", "center",
    ]

    func callFilter(_ name: String, _ value: TemplateValue, _ arguments: TemplateArguments) throws -> TemplateValue {
        switch name {
        case "trim":
            let characters = arguments.value(0, "chars")
            return .string(PythonString.strip(value.pythonString, characters.flatMap { $0.isNone ? nil : $0.pythonString },
                                              leading: true, trailing: true))
        case "tojson": return .string(try TemplateJSON.dumps(value, arguments))
        case "length", "count": return .int(try length(value))
        case "upper": return .string(value.pythonString.uppercased())
        case "lower": return .string(value.pythonString.lowercased())
        case "capitalize": return .string(PythonString.capitalize(value.pythonString))
        case "title": return .string(Self.jinjaTitle(value.pythonString))
        case "replace":
            guard let old = arguments.value(0, "old"), let new = arguments.value(1, "new") else {
                throw error(.runtime, "replace needs old and new")
            }
            return .string(PythonString.replace(value.pythonString, old.pythonString, new.pythonString,
                                                count: arguments.value(2, "count")?.integer ?? -1))
        case "join":
            let separator = arguments.value(0, "d")?.pythonString ?? ""
            var items = try iterate(value)
            if let attribute = arguments.value(1, "attribute") { items = try items.map { try lookupPath($0, attribute) } }
            return .string(items.map(\.pythonString).joined(separator: separator))
        case "first":
            if case .undefined(let hint) = value { throw error(.runtime, hint) }
            return try iterate(value).first ?? .undefined(hint: "No first item, sequence was empty.")
        case "last":
            if case .undefined(let hint) = value { throw error(.runtime, hint) }
            return try iterate(value).last ?? .undefined(hint: "No last item, sequence was empty.")
        case "default", "d":
            let useDefault = value.isUndefined || ((arguments.value(1, "boolean")?.isTruthy ?? false) && !value.isTruthy)
            return useDefault ? (arguments.value(0, "default_value") ?? .string("")) : value
        case "items":
            switch value {
            case .undefined: return .list([])
            case .dict(let dictionary): return .list(dictionary.pairs.map { .tuple([.string($0.key), $0.value]) })
            default: throw error(.runtime, "Can only get item pairs from a mapping.")
            }
        case "selectattr", "rejectattr", "select", "reject": return try selectFilter(name, value, arguments)
        case "map": return try mapFilter(value, arguments)
        case "string": return .string(value.pythonString)
        case "int": return convertToInt(value, arguments)
        case "float": return convertToFloat(value, arguments)
        case "list": return .list(try iterate(value))
        default: return try callMoreFilter(name, value, arguments)
        }
    }

    /// Python's `len()`; undefined has length 0.
    func length(_ value: TemplateValue) throws -> Int {
        switch value {
        case .string(let text): return text.unicodeScalars.count
        case .list(let items), .tuple(let items): return items.count
        case .dict(let dictionary): return dictionary.count
        case .undefined: return 0
        default: throw error(.runtime, "object of type '\(value.typeName)' has no len()")
        }
    }

    /// `a.b.0` through Jinja2's item-first lookup (attribute paths of selectattr, map, sort, join).
    func lookupPath(_ value: TemplateValue, _ path: TemplateValue) throws -> TemplateValue {
        guard case .string(let text) = path else { return try itemOf(value, path) }
        var current = value
        for part in text.split(separator: ".", omittingEmptySubsequences: false) {
            current = try itemOf(current, Int(part).map { TemplateValue.int($0) } ?? .string(String(part)))
        }
        return current
    }

    private func selectFilter(_ name: String, _ value: TemplateValue, _ arguments: TemplateArguments) throws -> TemplateValue {
        let byAttribute = name.hasSuffix("attr")
        var rest = arguments.positional
        var attribute: TemplateValue?
        if byAttribute {
            guard !rest.isEmpty else { throw error(.runtime, "\(name) needs an attribute name") }
            attribute = rest.removeFirst()
        }
        let testName = rest.isEmpty ? nil : rest.removeFirst().pythonString
        let keep = name.hasPrefix("select")
        let items = try iterate(value).filter { item in
            let subject = try attribute.map { try lookupPath(item, $0) } ?? item
            let passed = try testName.map { try callTest($0, subject, TemplateArguments(positional: rest)) } ?? subject.isTruthy
            return passed == keep
        }
        return .list(items)
    }

    private func mapFilter(_ value: TemplateValue, _ arguments: TemplateArguments) throws -> TemplateValue {
        let items = try iterate(value)
        if let attribute = arguments.keyword.first(where: { $0.name == "attribute" })?.value {
            let fallback = arguments.keyword.first { $0.name == "default" }?.value
            return .list(try items.map { item in
                let found = try lookupPath(item, attribute)
                return found.isUndefined ? (fallback ?? found) : found
            })
        }
        guard case .string(let filterName)? = arguments.positional.first else {
            throw error(.runtime, "map needs a filter name or attribute=")
        }
        let rest = TemplateArguments(positional: Array(arguments.positional.dropFirst()), keyword: arguments.keyword)
        return .list(try items.map { try callFilter(filterName, $0, rest) })
    }

    private func convertToInt(_ value: TemplateValue, _ arguments: TemplateArguments) -> TemplateValue {
        let fallback = arguments.value(0, "default") ?? .int(0)
        let base = arguments.value(1, "base")?.integer ?? 10
        switch value {
        case .int, .bool: return .int(value.integer!)
        case .double(let d): return d.isFinite ? .int(Int(d)) : fallback
        case .string(let text):
            let trimmed = PythonString.strip(text, nil, leading: true, trailing: true).replacingOccurrences(of: "_", with: "")
            if let integer = Int(trimmed, radix: base) { return .int(integer) }
            if let double = Double(trimmed), double.isFinite { return .int(Int(double)) }
            return fallback
        default: return fallback
        }
    }

    private func convertToFloat(_ value: TemplateValue, _ arguments: TemplateArguments) -> TemplateValue {
        let fallback = arguments.value(0, "default") ?? .double(0)
        if let number = value.number { return .double(number) }
        if case .string(let text) = value, let double = Double(PythonString.strip(text, nil, leading: true, trailing: true)) {
            return .double(double)
        }
        return fallback
    }

    /// Jinja2's `title` filter: upper-case the first letter after `-`, whitespace, or an opening bracket.
    static func jinjaTitle(_ text: String) -> String {
        var result = "", atWordStart = true
        for scalar in text.unicodeScalars {
            let isSeparator = scalar == "-" || PythonString.isSpace(scalar) || "({[<".unicodeScalars.contains(scalar)
            if isSeparator {
                result.unicodeScalars.append(scalar)
                atWordStart = true
            } else {
                result += atWordStart ? String(scalar).uppercased() : String(scalar).lowercased()
                atWordStart = false
            }
        }
        return result
    }
}
