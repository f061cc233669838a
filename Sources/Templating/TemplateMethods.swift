import Foundation

// MARK: - Methods of str, dict and list

extension TemplateEvaluator {
    /// `object.name` as a bound method, or nil when the type has no such method. Mutating methods of
    /// lists and dicts are refused as transformers' ImmutableSandboxedEnvironment refuses them.
    func boundMethod(_ object: TemplateValue, _ name: String) throws -> TemplateValue? {
        let body: TemplateFunction.Body?
        switch object {
        case .string(let text): body = stringMethod(text, name)
        case .dict(let dictionary): body = try dictMethod(dictionary, name)
        case .list(let items), .tuple(let items): body = try listMethod(items, name)
        default: body = nil
        }
        return body.map { .function(TemplateFunction(name: name, body: $0)) }
    }

    private func stringArgument(_ arguments: TemplateArguments, _ index: Int, _ name: String, method: String) throws -> String? {
        guard let value = arguments.value(index, name), !value.isNone else { return nil }
        guard case .string(let text) = value else {
            throw TemplateError(.runtime, "str.\(method)() argument must be str, not \(value.typeName)")
        }
        return text
    }

    private func stringMethod(_ text: String, _ name: String) -> TemplateFunction.Body? {
        func strip(leading: Bool, trailing: Bool) -> TemplateFunction.Body {
            { [unowned self] in .string(PythonString.strip(text, try self.stringArgument($0, 0, "chars", method: name),
                                                           leading: leading, trailing: trailing)) }
        }
        func affix(_ check: @escaping (String, String) -> Bool) -> TemplateFunction.Body {
            { arguments in
                switch arguments.value(0, "prefix") {
                case .string(let affix)?: return .bool(check(text, affix))
                case .list(let options)?, .tuple(let options)?:
                    return .bool(options.contains { if case .string(let affix) = $0 { return check(text, affix) } else { return false } })
                default: throw TemplateError(.runtime, "str.\(name)() takes a str or a tuple of str")
                }
            }
        }
        switch name {
        case "strip": return strip(leading: true, trailing: true)
        case "lstrip": return strip(leading: true, trailing: false)
        case "rstrip": return strip(leading: false, trailing: true)
        case "lower": return { _ in .string(text.lowercased()) }
        case "upper": return { _ in .string(text.uppercased()) }
        case "title": return { _ in .string(PythonString.title(text)) }
        case "capitalize": return { _ in .string(PythonString.capitalize(text)) }
        case "startswith": return affix(PythonString.startsWith)
        case "endswith": return affix(PythonString.endsWith)
        case "isdigit", "isspace", "isalpha", "isalnum", "islower", "isupper":
            return { _ in .bool(PythonString.classify(text, name)) }
        case "removeprefix":
            return { arguments in
                guard case .string(let prefix)? = arguments.value(0, "prefix") else { throw TemplateError(.runtime, "removeprefix() takes a str") }
                return .string(PythonString.startsWith(text, prefix) ? String(decoding: text.utf8.dropFirst(prefix.utf8.count), as: UTF8.self) : text)
            }
        case "removesuffix":
            return { arguments in
                guard case .string(let suffix)? = arguments.value(0, "suffix") else { throw TemplateError(.runtime, "removesuffix() takes a str") }
                return .string(PythonString.endsWith(text, suffix) && !suffix.isEmpty
                               ? String(decoding: text.utf8.dropLast(suffix.utf8.count), as: UTF8.self) : text)
            }
        default: return searchMethod(text, name)
        }
    }

    /// `split`, `rsplit`, `splitlines`, `replace`, `find`/`index` and their right-hand forms, `count`, `join`.
    private func searchMethod(_ text: String, _ name: String) -> TemplateFunction.Body? {
        switch name {
        case "split", "rsplit":
            return { [unowned self] arguments in
                let separator = try self.stringArgument(arguments, 0, "sep", method: name)
                if separator == "" { throw TemplateError(.runtime, "empty separator") }
                let maxSplit = arguments.value(1, "maxsplit")?.integer ?? -1
                if name == "rsplit" && maxSplit >= 0 {
                    let reversedText = String(String.UnicodeScalarView(text.unicodeScalars.reversed()))
                    let reversedSeparator = separator.map { String(String.UnicodeScalarView($0.unicodeScalars.reversed())) }
                    return .list(PythonString.split(reversedText, reversedSeparator, maxSplit: maxSplit).reversed().map {
                        .string(String(String.UnicodeScalarView($0.unicodeScalars.reversed())))
                    })
                }
                return .list(PythonString.split(text, separator, maxSplit: maxSplit).map { .string($0) })
            }
        case "splitlines": return { _ in .list(PythonString.splitLines(text).map { .string($0) }) }
        case "replace":
            return { [unowned self] arguments in
                guard let old = try self.stringArgument(arguments, 0, "old", method: name),
                      let new = try self.stringArgument(arguments, 1, "new", method: name) else {
                    throw TemplateError(.runtime, "str.replace() takes old and new strings")
                }
                return .string(PythonString.replace(text, old, new, count: arguments.value(2, "count")?.integer ?? -1))
            }
        case "find", "rfind", "index", "rindex":
            return { [unowned self] arguments in
                let needle = try self.stringArgument(arguments, 0, "sub", method: name) ?? ""
                let found = PythonString.find(text, needle, reverse: name.hasPrefix("r"))
                if found < 0 && name.hasSuffix("index") { throw TemplateError(.runtime, "substring not found") }
                return .int(found)
            }
        case "count":
            return { [unowned self] arguments in
                let needle = try self.stringArgument(arguments, 0, "sub", method: name) ?? ""
                return .int(needle.isEmpty ? text.unicodeScalars.count + 1 : PythonString.split(text, needle, maxSplit: -1).count - 1)
            }
        case "join":
            return { arguments in
                guard let value = arguments.value(0, "iterable") else { throw TemplateError(.runtime, "str.join() takes one argument") }
                let items = try self.iterate(value)
                return .string(try items.map { item -> String in
                    guard case .string(let piece) = item else {
                        throw TemplateError(.runtime, "sequence item: expected str instance, \(item.typeName) found")
                    }
                    return piece
                }.joined(separator: text))
            }
        default: return nil
        }
    }

    private func dictMethod(_ dictionary: TemplateDictionary, _ name: String) throws -> TemplateFunction.Body? {
        switch name {
        case "items": return { _ in .list(dictionary.pairs.map { .tuple([.string($0.key), $0.value]) }) }
        case "keys": return { _ in .list(dictionary.keys.map { .string($0) }) }
        case "values": return { _ in .list(dictionary.pairs.map(\.value)) }
        case "get":
            return { arguments in
                guard case .string(let key)? = arguments.value(0, "key") else { return arguments.value(1, "default") ?? .none }
                return dictionary[key] ?? arguments.value(1, "default") ?? .none
            }
        case "copy": return { _ in .dict(dictionary) }
        case "pop", "popitem", "update", "setdefault", "clear":
            throw error(.runtime, "access to attribute '\(name)' of 'dict' object is unsafe (the sandbox keeps inputs immutable)")
        default: return nil
        }
    }

    private func listMethod(_ items: [TemplateValue], _ name: String) throws -> TemplateFunction.Body? {
        switch name {
        case "index":
            return { arguments in
                guard let needle = arguments.value(0, "value"), let found = items.firstIndex(where: { $0.pythonEquals(needle) }) else {
                    throw TemplateError(.runtime, "value is not in list")
                }
                return .int(found)
            }
        case "count":
            return { arguments in
                let needle = arguments.value(0, "value") ?? .none
                return .int(items.filter { $0.pythonEquals(needle) }.count)
            }
        case "copy": return { _ in .list(items) }
        case "append", "extend", "insert", "pop", "remove", "clear", "sort", "reverse":
            throw error(.runtime, "access to attribute '\(name)' of 'list' object is unsafe (the sandbox keeps inputs immutable)")
        default: return nil
        }
    }
}

extension PythonString {
    /// `isdigit`, `isspace`, `isalpha`, `isalnum`, `islower`, `isupper` (false for the empty string, as in Python).
    static func classify(_ text: String, _ name: String) -> Bool {
        let scalars = Array(text.unicodeScalars)
        guard !scalars.isEmpty else { return false }
        switch name {
        case "isdigit": return scalars.allSatisfy { $0.properties.numericType == .digit || $0.properties.numericType == .decimal }
        case "isspace": return scalars.allSatisfy(isSpace)
        case "isalpha": return scalars.allSatisfy { $0.properties.isAlphabetic }
        case "isalnum": return scalars.allSatisfy { $0.properties.isAlphabetic || $0.properties.numericType != nil }
        case "islower":
            let cased = scalars.filter { $0.properties.isCased }
            return !cased.isEmpty && cased.allSatisfy { $0.properties.isLowercase }
        default:
            let cased = scalars.filter { $0.properties.isCased }
            return !cased.isEmpty && cased.allSatisfy { $0.properties.isUppercase }
        }
    }
}
