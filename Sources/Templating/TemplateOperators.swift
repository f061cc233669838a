import Foundation

// MARK: - Operators with Python's meaning

extension TemplateEvaluator {
    func unaryOperation(_ op: String, _ value: TemplateValue) throws -> TemplateValue {
        if case .undefined(let hint) = value { throw error(.runtime, hint) }
        switch (op, value) {
        case ("-", .int(let i)): return .int(-i)
        case ("-", .bool(let b)): return .int(b ? -1 : 0)
        case ("-", .double(let d)): return .double(-d)
        case ("+", .int), ("+", .double): return value
        case ("+", .bool(let b)): return .int(b ? 1 : 0)
        default: throw error(.runtime, "bad operand type for unary \(op): '\(value.typeName)'")
        }
    }

    func binaryOperation(_ op: String, _ left: TemplateValue, _ right: TemplateValue) throws -> TemplateValue {
        if op == "~" { return .string(left.pythonString + right.pythonString) }
        if case .undefined(let hint) = left { throw error(.runtime, hint) }
        if case .undefined(let hint) = right { throw error(.runtime, hint) }
        switch (op, left, right) {
        case ("+", .string(let a), .string(let b)): return .string(a + b)
        case ("+", .list(let a), .list(let b)): return .list(a + b)
        case ("+", .tuple(let a), .tuple(let b)): return .tuple(a + b)
        case ("*", .string(let text), _) where right.integer != nil: return .string(String(repeating: text, count: max(0, right.integer!)))
        case ("*", _, .string(let text)) where left.integer != nil: return .string(String(repeating: text, count: max(0, left.integer!)))
        case ("*", .list(let items), _) where right.integer != nil:
            return .list(Array([[TemplateValue]](repeating: items, count: max(0, right.integer!)).joined()))
        case ("%", .string, _):
            throw error(.unsupported, "printf-style string formatting with %")
        default: break
        }
        if let a = left.integer, let b = right.integer { return try integerOperation(op, a, b) }
        guard let a = left.number, let b = right.number else {
            throw error(.runtime, "unsupported operand type(s) for \(op): '\(left.typeName)' and '\(right.typeName)'")
        }
        switch op {
        case "+": return .double(a + b)
        case "-": return .double(a - b)
        case "*": return .double(a * b)
        case "**": return .double(Foundation.pow(a, b))
        default:
            guard b != 0 else { throw error(.runtime, "float division by zero") }
            switch op {
            case "/": return .double(a / b)
            case "//": return .double((a / b).rounded(.down))
            default:  // "%": the result takes the divisor's sign, as in Python
                let remainder = fmod(a, b)
                return .double(remainder != 0 && (remainder < 0) != (b < 0) ? remainder + b : remainder)
            }
        }
    }

    private func integerOperation(_ op: String, _ a: Int, _ b: Int) throws -> TemplateValue {
        func checked(_ result: (partialValue: Int, overflow: Bool)) throws -> TemplateValue {
            if result.overflow { throw error(.runtime, "integer overflow in \(op)") }
            return .int(result.partialValue)
        }
        switch op {
        case "+": return try checked(a.addingReportingOverflow(b))
        case "-": return try checked(a.subtractingReportingOverflow(b))
        case "*": return try checked(a.multipliedReportingOverflow(by: b))
        case "**":
            if b < 0 { return .double(Foundation.pow(Double(a), Double(b))) }
            var result = 1
            for _ in 0..<b {
                let (value, overflow) = result.multipliedReportingOverflow(by: a)
                if overflow { throw error(.runtime, "integer overflow in **") }
                result = value
            }
            return .int(result)
        case "/":
            guard b != 0 else { throw error(.runtime, "division by zero") }
            return .double(Double(a) / Double(b))
        default:
            guard b != 0 else { throw error(.runtime, "integer division or modulo by zero") }
            var quotient = a / b
            if (a % b != 0) && ((a < 0) != (b < 0)) { quotient -= 1 }  // Python floors
            return .int(op == "//" ? quotient : a - quotient * b)
        }
    }

    // MARK: - Comparisons

    func compare(_ op: String, _ left: TemplateValue, _ right: TemplateValue) throws -> Bool {
        switch op {
        case "==": return left.pythonEquals(right)
        case "!=": return !left.pythonEquals(right)
        case "in": return try contains(right, left)
        case "not in": return try !contains(right, left)
        default:
            guard let order = try ordering(left, right) else {
                throw error(.runtime, "'\(op)' not supported between instances of '\(left.typeName)' and '\(right.typeName)'")
            }
            switch op {
            case "<": return order < 0
            case "<=": return order <= 0
            case ">": return order > 0
            default: return order >= 0
            }
        }
    }

    /// -1, 0, 1 for numbers, strings (by code point) and lists (item by item); nil when Python refuses.
    func ordering(_ left: TemplateValue, _ right: TemplateValue) throws -> Int? {
        if let a = left.number, let b = right.number { return a < b ? -1 : (a > b ? 1 : 0) }
        switch (left, right) {
        case (.string(let a), .string(let b)):
            let (x, y) = (Array(a.utf8), Array(b.utf8))
            return x.lexicographicallyPrecedes(y) ? -1 : (x == y ? 0 : 1)
        case (.list(let a), .list(let b)), (.tuple(let a), .tuple(let b)):
            for (x, y) in zip(a, b) where !x.pythonEquals(y) { return try ordering(x, y) }
            return a.count < b.count ? -1 : (a.count > b.count ? 1 : 0)
        default: return nil
        }
    }

    /// Python's `item in container`.
    func contains(_ container: TemplateValue, _ item: TemplateValue) throws -> Bool {
        switch container {
        case .string(let text):
            guard case .string(let needle) = item else {
                throw error(.runtime, "'in <string>' requires string as left operand, not \(item.typeName)")
            }
            return needle.isEmpty || text.utf8.firstRange(of: needle.utf8) != nil
        case .list(let items), .tuple(let items): return items.contains { $0.pythonEquals(item) }
        case .dict(let dictionary):
            guard case .string(let key) = item else { return false }
            return dictionary[key] != nil
        case .namespace(let namespace):
            guard case .string(let key) = item else { return false }
            return namespace.attributes[key] != nil
        case .undefined: return false
        default: throw error(.runtime, "argument of type '\(container.typeName)' is not iterable")
        }
    }
}

extension TemplateValue {
    /// Python's `==` (1 == 1.0 == True; strings compared by code points, not canonical equivalence).
    func pythonEquals(_ other: TemplateValue) -> Bool {
        if let a = number, let b = other.number { return a == b }
        switch (self, other) {
        case (.undefined, .undefined), (.none, .none): return true
        case (.string(let a), .string(let b)): return a.utf8.elementsEqual(b.utf8)
        case (.list(let a), .list(let b)), (.tuple(let a), .tuple(let b)): return a.count == b.count && zip(a, b).allSatisfy { $0.pythonEquals($1) }
        case (.dict(let a), .dict(let b)):
            return a.count == b.count && a.pairs.allSatisfy { pair in b[pair.key].map { pair.value.pythonEquals($0) } ?? false }
        case (.namespace(let a), .namespace(let b)): return a === b
        case (.function(let a), .function(let b)): return a === b
        default: return false
        }
    }
}
