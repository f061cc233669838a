import Foundation

// MARK: - Expression evaluation

extension TemplateEvaluator {
    func evaluate(_ expression: Expression, _ scope: TemplateScope) throws -> TemplateValue {
        currentLine = expression.line
        switch expression.kind {
        case .literal(let value): return value
        case .name(let name): return scope.lookup(name) ?? .undefinedName(name)
        case .list(let items): return .list(try items.map { try evaluate($0, scope) })
        case .tuple(let items): return .tuple(try items.map { try evaluate($0, scope) })
        case .dict(let pairs):
            var dictionary = TemplateDictionary()
            for pair in pairs {
                guard case .string(let key) = try evaluate(pair.key, scope) else {
                    throw error(.unsupported, "a dict literal with a non-string key")
                }
                dictionary[key] = try evaluate(pair.value, scope)
            }
            return .dict(dictionary)
        case .attribute(let object, let attribute):
            return try attributeOf(try evaluate(object, scope), attribute)
        case .item(let object, let key):
            return try itemOf(try evaluate(object, scope), try evaluate(key, scope))
        case .slice(let object, let start, let stop, let step):
            let value = try evaluate(object, scope)
            return try slice(value, try start.map { try evaluate($0, scope) }, try stop.map { try evaluate($0, scope) },
                             try step.map { try evaluate($0, scope) })
        case .call:
            return try evaluateCall(expression, scope, extraKeyword: nil)
        case .filter(let value, let name, let arguments):
            return try callFilter(name, try evaluate(value, scope), try evaluateArguments(arguments, scope))
        case .test(let value, let name, let arguments, let negated):
            let result = try callTest(name, try evaluate(value, scope), try evaluateArguments(arguments, scope))
            return .bool(result != negated)
        case .unary(let op, let operand):
            return try unaryOperation(op, try evaluate(operand, scope))
        case .binary(let op, let left, let right):
            return try binaryOperation(op, try evaluate(left, scope), try evaluate(right, scope))
        case .compare(let first, let operations):
            var left = try evaluate(first, scope)
            for (op, rightExpression) in operations {
                let right = try evaluate(rightExpression, scope)
                guard try compare(op, left, right) else { return .bool(false) }
                left = right
            }
            return .bool(true)
        case .and(let left, let right):
            let value = try evaluate(left, scope)
            return value.isTruthy ? try evaluate(right, scope) : value
        case .or(let left, let right):
            let value = try evaluate(left, scope)
            return value.isTruthy ? value : try evaluate(right, scope)
        case .not(let operand):
            return .bool(!(try evaluate(operand, scope).isTruthy))
        case .conditional(let then, let condition, let otherwise):
            if try evaluate(condition, scope).isTruthy { return try evaluate(then, scope) }
            guard let otherwise else { return .undefined(hint: "the inline if has no else branch") }
            return try evaluate(otherwise, scope)
        }
    }

    func evaluateArguments(_ arguments: [CallArgument], _ scope: TemplateScope) throws -> TemplateArguments {
        var result = TemplateArguments()
        for argument in arguments {
            let value = try evaluate(argument.value, scope)
            if let name = argument.name { result.keyword.append((name, value)) } else { result.positional.append(value) }
        }
        return result
    }

    /// A call expression; `extraKeyword` passes `caller` from a `{% call %}` block.
    func evaluateCall(_ expression: Expression, _ scope: TemplateScope,
                      extraKeyword: (String, TemplateValue)?) throws -> TemplateValue {
        guard case .call(let calleeExpression, let argumentExpressions) = expression.kind else {
            throw error(.syntax, "expected a call")
        }
        let callee = try evaluate(calleeExpression, scope)
        var arguments = try evaluateArguments(argumentExpressions, scope)
        if let extraKeyword { arguments.keyword.append(extraKeyword) }
        currentLine = expression.line
        switch callee {
        case .function(let function):
            do { return try function.body(arguments) } catch let failure as TemplateError {
                throw failure.placed(template: name, line: expression.line)
            }
        case .undefined(let hint):
            throw error(.runtime, hint)
        default:
            throw error(.runtime, "'\(callee.typeName)' object is not callable")
        }
    }

    // MARK: - Attribute and item access

    /// `object.name`: a method or attribute first, then the item (Jinja2's `getattr`).
    func attributeOf(_ object: TemplateValue, _ attribute: String) throws -> TemplateValue {
        if case .undefined(let hint) = object { throw error(.runtime, hint) }
        if let method = try boundMethod(object, attribute) { return method }
        switch object {
        case .dict(let dictionary):
            return dictionary[attribute] ?? .undefined(hint: "'dict object' has no attribute '\(attribute)'")
        case .namespace(let namespace):
            return namespace.attributes[attribute] ?? .undefined(hint: "'Namespace' object has no attribute '\(attribute)'")
        default:
            return .undefined(hint: "\(object.objectDescription) has no attribute '\(attribute)'")
        }
    }

    /// `object[key]`: the item first, then a method or attribute named by a string key (Jinja2's `getitem`).
    func itemOf(_ object: TemplateValue, _ key: TemplateValue) throws -> TemplateValue {
        if case .undefined(let hint) = object { throw error(.runtime, hint) }
        switch (object, key) {
        case (.dict(let dictionary), .string(let name)):
            if let value = dictionary[name] { return value }
        case (.list(let items), _), (.tuple(let items), _):
            if let position = key.integer {
                let index = position < 0 ? position + items.count : position
                if index >= 0 && index < items.count { return items[index] }
                return .undefined(hint: "'list object' has no element \(position)")
            }
        case (.string(let text), _):
            if let position = key.integer {
                let scalars = Array(text.unicodeScalars)
                let index = position < 0 ? position + scalars.count : position
                if index >= 0 && index < scalars.count { return .string(String(scalars[index])) }
                return .undefined(hint: "'str object' has no element \(position)")
            }
        case (.namespace(let namespace), .string(let name)):
            if let value = namespace.attributes[name] { return value }
        default:
            break
        }
        if case .string(let name) = key, let method = try boundMethod(object, name) { return method }
        let keyText = key.pythonRepr
        if case .string = key { return .undefined(hint: "\(object.objectDescription) has no attribute \(keyText)") }
        return .undefined(hint: "\(object.objectDescription) has no element \(keyText)")
    }

    /// `value[start:stop:step]` for lists and strings, with Python's clamping and negative indices.
    func slice(_ value: TemplateValue, _ start: TemplateValue?, _ stop: TemplateValue?, _ step: TemplateValue?) throws -> TemplateValue {
        func bound(_ value: TemplateValue?) throws -> Int? {
            guard let value, !(value.isUndefined), !(value.isNone) else { return nil }
            guard let integer = value.integer else { throw error(.runtime, "slice indices must be integers or None") }
            return integer
        }
        let stride = try bound(step) ?? 1
        guard stride != 0 else { throw error(.runtime, "slice step cannot be zero") }
        func indices(count: Int) throws -> [Int] {
            func clamp(_ index: Int?, _ fallback: Int) -> Int {
                guard var index else { return fallback }
                if index < 0 { index += count }
                return stride > 0 ? min(max(index, 0), count) : min(max(index, -1), count - 1)
            }
            let lower = clamp(try bound(start), stride > 0 ? 0 : count - 1)
            let upper = clamp(try bound(stop), stride > 0 ? count : -1)
            return Array(Swift.stride(from: lower, to: upper, by: stride))
        }
        switch value {
        case .list(let items): return .list(try indices(count: items.count).map { items[$0] })
        case .tuple(let items): return .tuple(try indices(count: items.count).map { items[$0] })
        case .string(let text):
            let scalars = Array(text.unicodeScalars)
            var result = String.UnicodeScalarView()
            for index in try indices(count: scalars.count) { result.append(scalars[index]) }
            return .string(String(result))
        case .undefined(let hint): throw error(.runtime, hint)
        default: throw error(.runtime, "'\(value.typeName)' object is not subscriptable")
        }
    }
}

extension TemplateValue {
    var isNone: Bool { if case .none = self { return true } else { return false } }

    /// Jinja2's `object_type_repr`: `'dict object'`, `'None'`, ...
    var objectDescription: String {
        switch self {
        case .none: return "'None'"
        case .dict: return "'dict object'"
        case .list: return "'list object'"
        case .tuple: return "'tuple object'"
        case .string: return "'str object'"
        case .int: return "'int object'"
        case .double: return "'float object'"
        case .bool: return "'bool object'"
        default: return "'\(typeName) object'"
        }
    }
}
