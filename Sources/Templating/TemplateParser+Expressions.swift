import Foundation

// MARK: - Expression parser

/// Jinja2's precedence, loosest first: `x if c else y`, `or`, `and`, `not`, comparisons and `in`,
/// `+ -`, `~`, `* / // %`, `**`, unary `- +`, then primaries with `.attr`, `[item]`, `(call)`,
/// `| filter` and `is test` (filters and tests bind tighter than every binary operator).
extension TemplateParser {
    mutating func parseExpression(allowConditional: Bool = true) throws -> Expression {
        allowConditional ? try parseConditional() : try parseOr()
    }

    /// An expression or an unparenthesised tuple `a, b` (the right side of `set`).
    mutating func parseTupleExpression() throws -> Expression {
        let line = self.line
        let first = try parseExpression()
        guard current?.kind == .op(",") else { return first }
        var items = [first]
        while accept(.op(",")) {
            if current?.kind == .blockEnd { break }
            items.append(try parseExpression())
        }
        return Expression(.tuple(items), line: line)
    }

    mutating func parseConditional() throws -> Expression {
        var expression = try parseOr()
        while acceptName("if") {
            let condition = try parseOr()
            let otherwise = acceptName("else") ? try parseConditional() : nil
            expression = Expression(.conditional(then: expression, condition: condition, otherwise: otherwise), line: expression.line)
        }
        return expression
    }

    mutating func parseOr() throws -> Expression {
        var left = try parseAnd()
        while acceptName("or") { left = Expression(.or(left, try parseAnd()), line: left.line) }
        return left
    }

    mutating func parseAnd() throws -> Expression {
        var left = try parseNot()
        while acceptName("and") { left = Expression(.and(left, try parseNot()), line: left.line) }
        return left
    }

    mutating func parseNot() throws -> Expression {
        let line = self.line
        if acceptName("not") { return Expression(.not(try parseNot()), line: line) }
        return try parseCompare()
    }

    mutating func parseCompare() throws -> Expression {
        let first = try parseMath1()
        var operations = [(op: String, Expression)]()
        while let token = current {
            if case .op(let op) = token.kind, ["==", "!=", "<", "<=", ">", ">="].contains(op) {
                index += 1
                operations.append((op, try parseMath1()))
            } else if token.kind == .name("in") {
                index += 1
                operations.append(("in", try parseMath1()))
            } else if token.kind == .name("not"), index + 1 < tokens.count, tokens[index + 1].kind == .name("in") {
                index += 2
                operations.append(("not in", try parseMath1()))
            } else {
                break
            }
        }
        return operations.isEmpty ? first : Expression(.compare(first, operations), line: first.line)
    }

    mutating func parseMath1() throws -> Expression {
        try parseBinary(["+", "-"]) { try $0.parseConcat() }
    }

    mutating func parseConcat() throws -> Expression {
        try parseBinary(["~"]) { try $0.parseMath2() }
    }

    mutating func parseMath2() throws -> Expression {
        try parseBinary(["*", "/", "//", "%"]) { try $0.parsePower() }
    }

    mutating func parsePower() throws -> Expression {
        try parseBinary(["**"]) { try $0.parseUnary(withFilters: true) }
    }

    /// Left-associative operators `ops` over operands parsed by `operand`.
    mutating func parseBinary(_ ops: Set<String>, operand: (inout TemplateParser) throws -> Expression) throws -> Expression {
        var left = try operand(&self)
        while case .op(let op) = current?.kind, ops.contains(op) {
            index += 1
            left = Expression(.binary(op, left, try operand(&self)), line: left.line)
        }
        return left
    }

    mutating func parseUnary(withFilters: Bool) throws -> Expression {
        let line = self.line
        var expression: Expression
        if accept(.op("-")) {
            expression = Expression(.unary("-", try parseUnary(withFilters: false)), line: line)
        } else if accept(.op("+")) {
            expression = Expression(.unary("+", try parseUnary(withFilters: false)), line: line)
        } else {
            expression = try parsePostfix(try parsePrimary())
        }
        if withFilters { expression = try parseFiltersAndTests(expression) }
        return expression
    }

    mutating func parsePrimary() throws -> Expression {
        guard let token = current else { throw syntax("expected an expression before the end of the template", line: line) }
        index += 1
        switch token.kind {
        case .name(let word):
            switch word {
            case "true", "True": return Expression(.literal(.bool(true)), line: token.line)
            case "false", "False": return Expression(.literal(.bool(false)), line: token.line)
            case "none", "None": return Expression(.literal(.none), line: token.line)
            default: return Expression(.name(word), line: token.line)
            }
        case .string(var text):
            while case .string(let more) = current?.kind {
                text += more
                index += 1
            }
            return Expression(.literal(.string(text)), line: token.line)
        case .integer(let value): return Expression(.literal(.int(value)), line: token.line)
        case .float(let value): return Expression(.literal(.double(value)), line: token.line)
        case .op("("): return try parseParenthesised(line: token.line)
        case .op("["):
            var items = [Expression]()
            while !accept(.op("]")) {
                if !items.isEmpty { try expect(.op(","), ",") }
                if accept(.op("]")) { break }
                items.append(try parseExpression())
            }
            return Expression(.list(items), line: token.line)
        case .op("{"):
            var pairs = [(key: Expression, value: Expression)]()
            while !accept(.op("}")) {
                if !pairs.isEmpty { try expect(.op(","), ",") }
                if accept(.op("}")) { break }
                let key = try parseExpression()
                try expect(.op(":"), ":")
                pairs.append((key, try parseExpression()))
            }
            return Expression(.dict(pairs), line: token.line)
        default:
            index -= 1
            throw syntax("expected an expression\(foundDescription)", line: token.line)
        }
    }

    /// After `(`: `()`, `(x)` or a tuple `(a, b)`.
    mutating func parseParenthesised(line: Int) throws -> Expression {
        if accept(.op(")")) { return Expression(.tuple([]), line: line) }
        let first = try parseExpression()
        if accept(.op(")")) { return first }
        var items = [first]
        while accept(.op(",")) {
            if current?.kind == .op(")") { break }
            items.append(try parseExpression())
        }
        try expect(.op(")"), ")")
        return Expression(.tuple(items), line: line)
    }

    mutating func parsePostfix(_ base: Expression) throws -> Expression {
        var expression = base
        while let token = current {
            if token.kind == .op(".") {
                index += 1
                switch current?.kind {
                case .name(let attribute)?:
                    index += 1
                    expression = Expression(.attribute(expression, attribute), line: token.line)
                case .integer(let position)?:
                    index += 1
                    expression = Expression(.item(expression, Expression(.literal(.int(position)), line: token.line)), line: token.line)
                default: throw syntax("expected an attribute name after '.'\(foundDescription)", line: token.line)
                }
            } else if token.kind == .op("[") {
                index += 1
                expression = try parseSubscript(expression, line: token.line)
            } else if token.kind == .op("(") {
                expression = Expression(.call(expression, try parseCallArguments()), line: token.line)
            } else {
                break
            }
        }
        return expression
    }

    /// After `[`: an item `[k]` or a slice `[a:b:c]` (any part may be missing).
    mutating func parseSubscript(_ object: Expression, line: Int) throws -> Expression {
        func part(_ parser: inout TemplateParser) throws -> Expression? {
            if case .op(let op)? = parser.current?.kind, op == ":" || op == "]" { return nil }
            return try parser.parseExpression()
        }
        let start = try part(&self)
        if accept(.op("]")) {
            guard let start else { throw syntax("empty subscript []", line: line) }
            return Expression(.item(object, start), line: line)
        }
        try expect(.op(":"), ":")
        let stop = try part(&self)
        var step: Expression?
        if accept(.op(":")) { step = try part(&self) }
        try expect(.op("]"), "]")
        return Expression(.slice(object, start: start, stop: stop, step: step), line: line)
    }

    /// `(a, b, key=value)`.
    mutating func parseCallArguments() throws -> [CallArgument] {
        try expect(.op("("), "(")
        var arguments = [CallArgument]()
        while !accept(.op(")")) {
            if !arguments.isEmpty { try expect(.op(","), ",") }
            if accept(.op(")")) { break }
            if case .op(let op)? = current?.kind, op == "*" || op == "**" {
                throw TemplateError(.unsupported, "*args/**kwargs in a call", template: name, line: line)
            }
            if case .name(let keyword)? = current?.kind, index + 1 < tokens.count, tokens[index + 1].kind == .op("=") {
                index += 2
                arguments.append(CallArgument(name: keyword, value: try parseExpression()))
            } else {
                arguments.append(CallArgument(name: nil, value: try parseExpression()))
            }
        }
        return arguments
    }

    mutating func parseOptionalCallArguments() throws -> [CallArgument] {
        current?.kind == .op("(") ? try parseCallArguments() : []
    }

    /// `| filter(args)` and `is [not] test(args)` chains after a unary expression.
    mutating func parseFiltersAndTests(_ base: Expression) throws -> Expression {
        var expression = base
        while let token = current {
            if accept(.op("|")) {
                var filterName = try expectAnyName()
                while accept(.op(".")) { filterName += "." + (try expectAnyName()) }
                expression = Expression(.filter(expression, name: filterName, try parseOptionalCallArguments()), line: token.line)
            } else if acceptName("is") {
                let negated = acceptName("not")
                let testName = try expectAnyName()
                expression = Expression(.test(expression, name: testName, try parseTestArguments(), negated: negated), line: token.line)
            } else if token.kind == .op("(") {
                expression = Expression(.call(expression, try parseCallArguments()), line: token.line)
            } else {
                break
            }
        }
        return expression
    }

    /// A test's arguments: `(a, b)`, or one bare primary (`is divisibleby 3`, `is sameas none`).
    mutating func parseTestArguments() throws -> [CallArgument] {
        guard let token = current else { return [] }
        switch token.kind {
        case .op("("): return try parseCallArguments()
        case .name(let word) where !["else", "or", "and", "if", "is", "in", "not"].contains(word):
            return [CallArgument(name: nil, value: try parsePostfix(try parsePrimary()))]
        case .string, .integer, .float, .op("["), .op("{"):
            return [CallArgument(name: nil, value: try parsePostfix(try parsePrimary()))]
        default: return []
        }
    }
}
