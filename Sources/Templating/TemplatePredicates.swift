import Foundation

// MARK: - Tests (`value is name(args)`)

extension TemplateEvaluator {
    /// The Jinja2 tests this engine implements (names checked when a template is parsed).
    static let testNames: Set<String> = [
        "defined", "undefined", "none", "string", "number", "integer", "float", "boolean", "true", "false",
        "mapping", "iterable", "sequence", "callable", "odd", "even", "divisibleby", "lower", "upper",
        "eq", "equalto", "==", "ne", "!=", "lt", "lessthan", "<", "le", "<=", "gt", "greaterthan", ">", "ge", ">=",
        "in", "sameas", "filter", "test", "escaped",
    ]

    func callTest(_ name: String, _ value: TemplateValue, _ arguments: TemplateArguments) throws -> Bool {
        let argument = arguments.value(0, "other")
        func other() throws -> TemplateValue {
            guard let argument else { throw error(.runtime, "the test '\(name)' needs an argument") }
            return argument
        }
        switch name {
        case "defined": return !value.isUndefined
        case "undefined": return value.isUndefined
        case "none": return value.isNone
        case "string": if case .string = value { return true } else { return false }
        case "number": return value.number != nil
        case "integer": if case .int = value { return true } else { return false }
        case "float": if case .double = value { return true } else { return false }
        case "boolean": if case .bool = value { return true } else { return false }
        case "true": if case .bool(true) = value { return true } else { return false }
        case "false": if case .bool(false) = value { return true } else { return false }
        case "mapping": if case .dict = value { return true } else { return false }
        case "iterable":
            switch value {
            case .list, .tuple, .dict, .string, .undefined: return true
            default: return false
            }
        case "sequence":
            switch value {
            case .list, .tuple, .dict, .string, .undefined: return true  // Undefined has a length and items
            default: return false
            }
        case "callable": if case .function = value { return true } else { return false }
        case "odd", "even":
            guard let integer = value.integer else { throw error(.runtime, "the test '\(name)' needs an integer") }
            return (abs(integer) % 2 == 1) == (name == "odd")
        case "divisibleby":
            guard let integer = value.integer, let divisor = try other().integer, divisor != 0 else {
                throw error(.runtime, "divisibleby needs a non-zero integer")
            }
            return integer % divisor == 0
        case "lower", "upper":
            guard case .string(let text) = value else { return false }
            return PythonString.classify(text, name == "lower" ? "islower" : "isupper")
        case "eq", "equalto", "==": return try compare("==", value, other())
        case "ne", "!=": return try compare("!=", value, other())
        case "lt", "lessthan", "<": return try compare("<", value, other())
        case "le", "<=": return try compare("<=", value, other())
        case "gt", "greaterthan", ">": return try compare(">", value, other())
        case "ge", ">=": return try compare(">=", value, other())
        case "in": return try contains(other(), value)
        case "sameas": return try sameObject(value, other())
        case "filter":
            guard case .string(let filterName) = value else { return false }
            return Self.filterNames.contains(filterName)
        case "test":
            guard case .string(let testName) = value else { return false }
            return Self.testNames.contains(testName)
        case "escaped": return false
        default: throw error(.unsupported, "the test '\(name)'")
        }
    }

    /// Python's `is`: identity for the singletons None/True/False, equality of type and value otherwise.
    private func sameObject(_ left: TemplateValue, _ right: TemplateValue) throws -> Bool {
        switch (left, right) {
        case (.none, .none), (.undefined, .undefined): return true
        case (.bool(let a), .bool(let b)): return a == b
        case (.int(let a), .int(let b)): return a == b
        case (.namespace(let a), .namespace(let b)): return a === b
        case (.function(let a), .function(let b)): return a === b
        default: return false
        }
    }
}
