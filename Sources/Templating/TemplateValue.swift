import Foundation

// MARK: - Values

/// A value inside a template, with Python's meaning (what Jinja2 sees when transformers renders).
///
/// Dictionaries keep insertion order (Python 3.7+), so `tojson` and `items()` print keys as given.
public indirect enum TemplateValue: Sendable {
    /// A name or attribute that does not exist (Jinja2's default `Undefined`): renders as "",
    /// is false, iterates as empty; any attribute, item or call on it is an error naming `hint`.
    case undefined(hint: String)
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case list([TemplateValue])
    /// A tuple (`(a, b)`, `dict.items()` pairs): a list that prints as `(a, b)` and never equals a list.
    case tuple([TemplateValue])
    case dict(TemplateDictionary)
    /// `namespace(...)`: the one mutable object (shared by reference, so `set ns.x` inside a loop is seen after it).
    case namespace(TemplateNamespace)
    /// A callable: a global function, a bound method (`"a".strip`), a macro or `caller`.
    case function(TemplateFunction)

    /// Jinja2's message for a missing name: `'foo' is undefined`.
    public static func undefinedName(_ name: String) -> TemplateValue { .undefined(hint: "'\(name)' is undefined") }

    /// Python truthiness.
    public var isTruthy: Bool {
        switch self {
        case .undefined, .none: return false
        case .bool(let b): return b
        case .int(let i): return i != 0
        case .double(let d): return d != 0
        case .string(let s): return !s.isEmpty
        case .list(let l), .tuple(let l): return !l.isEmpty
        case .dict(let d): return !d.isEmpty
        case .namespace, .function: return true
        }
    }

    public var isUndefined: Bool { if case .undefined = self { return true } else { return false } }

    /// Python's type name, for error messages ("'int' object has no attribute 'x'").
    public var typeName: String {
        switch self {
        case .undefined: return "Undefined"
        case .none: return "NoneType"
        case .bool: return "bool"
        case .int: return "int"
        case .double: return "float"
        case .string: return "str"
        case .list: return "list"
        case .tuple: return "tuple"
        case .dict: return "dict"
        case .namespace: return "Namespace"
        case .function: return "function"
        }
    }

    /// Numeric view for arithmetic and comparisons (`bool` counts as an int, as in Python).
    var number: Double? {
        switch self {
        case .bool(let b): return b ? 1 : 0
        case .int(let i): return Double(i)
        case .double(let d): return d
        default: return nil
        }
    }

    /// The items of a list or tuple.
    var sequenceItems: [TemplateValue]? {
        switch self {
        case .list(let items), .tuple(let items): return items
        default: return nil
        }
    }

    /// Integer view (`bool` included), nil for floats and everything else.
    var integer: Int? {
        switch self {
        case .bool(let b): return b ? 1 : 0
        case .int(let i): return i
        default: return nil
        }
    }
}

// MARK: - Dictionaries

/// An insertion-ordered dictionary with string keys (chat messages, tool schemas, dict literals).
public struct TemplateDictionary: Sendable {
    public private(set) var keys: [String] = []
    private var storage: [String: TemplateValue] = [:]

    public init() {}

    public init(_ pairs: [(String, TemplateValue)]) {
        for (key, value) in pairs { self[key] = value }
    }

    public subscript(key: String) -> TemplateValue? {
        get { storage[key] }
        set {
            if newValue == nil {
                if storage.removeValue(forKey: key) != nil { keys.removeAll { $0 == key } }
            } else {
                if storage[key] == nil { keys.append(key) }
                storage[key] = newValue
            }
        }
    }

    public var isEmpty: Bool { keys.isEmpty }
    public var count: Int { keys.count }
    /// Key-value pairs in insertion order.
    public var pairs: [(key: String, value: TemplateValue)] { keys.map { ($0, storage[$0]!) } }
}

// MARK: - Reference types

/// The attributes of a `namespace()` object.
public final class TemplateNamespace: @unchecked Sendable {
    public var attributes: TemplateDictionary
    init(_ attributes: TemplateDictionary) { self.attributes = attributes }
}

/// A callable value: positional and keyword arguments in, a value out (errors thrown as `TemplateError`).
public final class TemplateFunction: @unchecked Sendable {
    public typealias Body = (_ arguments: TemplateArguments) throws -> TemplateValue
    let name: String
    let body: Body
    public init(name: String, body: @escaping Body) {
        self.name = name
        self.body = body
    }
}

/// Arguments of a call: positional then keyword, as written.
public struct TemplateArguments {
    public var positional: [TemplateValue]
    public var keyword: [(name: String, value: TemplateValue)]

    public init(positional: [TemplateValue] = [], keyword: [(name: String, value: TemplateValue)] = []) {
        self.positional = positional
        self.keyword = keyword
    }

    /// The argument at `index`, else the keyword `name`, else nil (Python's binding for simple signatures).
    public func value(_ index: Int, _ name: String) -> TemplateValue? {
        if index < positional.count { return positional[index] }
        return keyword.first { $0.name == name }?.value
    }
}
