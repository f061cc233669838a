import Foundation

// MARK: - Statement parser

/// Builds the statement tree from tokens, following Jinja2's grammar for the tags chat templates use.
/// Tags it does not implement (`include`, `extends`, `block`, `import`, ...) are refused by name.
struct TemplateParser {
    let name: String
    var tokens: [TemplateToken]
    var index = 0

    init(tokens: [TemplateToken], name: String) {
        self.tokens = tokens
        self.name = name
    }

    static func parse(_ source: String, name: String) throws -> [Statement] {
        var parser = TemplateParser(tokens: try TemplateLexer.tokenize(source, name: name), name: name)
        let (body, end) = try parser.parseBody(until: [])
        if let end { throw parser.syntax("unexpected {% \(end) %}", line: parser.current?.line ?? 0) }
        return body
    }

    /// Tags ending a body: `endif`, `else`, ... Known Jinja tags this engine refuses.
    static let refusedTags: Set<String> = ["include", "import", "from", "extends", "block", "endblock", "with", "endwith",
                                           "autoescape", "endautoescape", "trans", "endtrans", "do"]

    var current: TemplateToken? { index < tokens.count ? tokens[index] : nil }
    var line: Int { current?.line ?? tokens.last?.line ?? 0 }

    func syntax(_ message: String, line: Int) -> TemplateError { TemplateError(.syntax, message, template: name, line: line) }

    // MARK: - Bodies

    /// Statements up to a block tag whose first name is in `terminators` (the tag name returned, its
    /// `{% name` consumed), or to the end of the tokens (nil).
    mutating func parseBody(until terminators: Set<String>) throws -> ([Statement], String?) {
        var body = [Statement]()
        while let token = current {
            switch token.kind {
            case .text(let text):
                index += 1
                body.append(Statement(.text(text), line: token.line))
            case .variableBegin:
                index += 1
                let expression = try parseExpression()
                try expect(.variableEnd, "}}")
                body.append(Statement(.output(expression), line: token.line))
            case .blockBegin:
                guard index + 1 < tokens.count, case .name(let tag) = tokens[index + 1].kind else {
                    throw syntax("a tag name must follow {%", line: token.line)
                }
                if terminators.contains(tag) {
                    index += 2
                    return (body, tag)
                }
                index += 2
                body.append(try parseTag(tag, line: token.line))
            default:
                throw syntax("unexpected token", line: token.line)
            }
        }
        if !terminators.isEmpty {
            throw syntax("template ended while looking for {% \(terminators.sorted().joined(separator: " or ")) %}", line: line)
        }
        return (body, nil)
    }

    mutating func parseTag(_ tag: String, line: Int) throws -> Statement {
        switch tag {
        case "if": return try parseIf(line: line)
        case "for": return try parseFor(line: line)
        case "set": return try parseSet(line: line)
        case "macro": return try parseMacro(line: line)
        case "call": return try parseCallBlock(line: line)
        case "filter":
            let filters = try parseFilterChain()
            try expect(.blockEnd, "%}")
            let (body, _) = try parseBody(until: ["endfilter"])
            try expect(.blockEnd, "%}")
            return Statement(.filterBlock(filters: filters, body: body), line: line)
        case "generation":
            try expect(.blockEnd, "%}")
            let (body, _) = try parseBody(until: ["endgeneration"])
            try expect(.blockEnd, "%}")
            return Statement(.generation(body), line: line)
        case "break", "continue":
            try expect(.blockEnd, "%}")
            return Statement(tag == "break" ? .breakLoop : .continueLoop, line: line)
        default:
            if Self.refusedTags.contains(tag) {
                throw TemplateError(.unsupported, "the {% \(tag) %} tag", template: name, line: line)
            }
            throw syntax("unknown tag {% \(tag) %}", line: line)
        }
    }

    mutating func parseIf(line: Int) throws -> Statement {
        var branches = [(condition: Expression, body: [Statement])]()
        var condition = try parseExpression()
        while true {
            try expect(.blockEnd, "%}")
            let (body, end) = try parseBody(until: ["elif", "else", "endif"])
            branches.append((condition, body))
            if end == "elif" { condition = try parseExpression(); continue }
            var otherwise = [Statement]()
            if end == "else" {
                try expect(.blockEnd, "%}")
                (otherwise, _) = try parseBody(until: ["endif"])
            }
            try expect(.blockEnd, "%}")
            return Statement(.ifChain(branches, otherwise: otherwise), line: line)
        }
    }

    mutating func parseFor(line: Int) throws -> Statement {
        let targets = try parseTargetNames()
        try expectName("in")
        let iterable = try parseExpression(allowConditional: false)
        var filter: Expression?
        if acceptName("if") { filter = try parseExpression() }
        if acceptName("recursive") { throw TemplateError(.unsupported, "recursive for loops", template: name, line: line) }
        try expect(.blockEnd, "%}")
        let (body, end) = try parseBody(until: ["else", "endfor"])
        var otherwise = [Statement]()
        if end == "else" {
            try expect(.blockEnd, "%}")
            (otherwise, _) = try parseBody(until: ["endfor"])
        }
        try expect(.blockEnd, "%}")
        return Statement(.forLoop(ForLoop(targets: targets, iterable: iterable, filter: filter, body: body,
                                          otherwise: otherwise)), line: line)
    }

    mutating func parseSet(line: Int) throws -> Statement {
        let first = try expectAnyName()
        if accept(.op(".")) {
            let attribute = try expectAnyName()
            try expect(.op("="), "=")
            let value = try parseTupleExpression()
            try expect(.blockEnd, "%}")
            return Statement(.setAttribute(object: first, attribute: attribute, value), line: line)
        }
        var targets = [first]
        while accept(.op(",")) { targets.append(try expectAnyName()) }
        if accept(.op("=")) {
            let value = try parseTupleExpression()
            try expect(.blockEnd, "%}")
            return Statement(.set(targets: targets, value), line: line)
        }
        guard targets.count == 1 else { throw syntax("a block set takes one name", line: line) }
        let filters = current?.kind == .op("|") ? try parseFilterChain() : []
        try expect(.blockEnd, "%}")
        let (body, _) = try parseBody(until: ["endset"])
        try expect(.blockEnd, "%}")
        return Statement(.setBlock(target: first, body: body, filters: filters), line: line)
    }

    mutating func parseMacro(line: Int) throws -> Statement {
        let macroName = try expectAnyName()
        let parameters = try parseParameterList()
        try expect(.blockEnd, "%}")
        let (body, _) = try parseBody(until: ["endmacro"])
        try expect(.blockEnd, "%}")
        return Statement(.macro(Macro(name: macroName, parameters: parameters, body: body)), line: line)
    }

    mutating func parseCallBlock(line: Int) throws -> Statement {
        var callerParameters = [MacroParameter]()
        if current?.kind == .op("(") { callerParameters = try parseParameterList() }
        let callee = try parseExpression()
        guard case .call = callee.kind else { throw syntax("{% call %} needs a macro call", line: line) }
        try expect(.blockEnd, "%}")
        let (body, _) = try parseBody(until: ["endcall"])
        try expect(.blockEnd, "%}")
        return Statement(.callBlock(callee: callee, callerParameters: callerParameters, body: body), line: line)
    }

    /// `(a, b=default, ...)`.
    mutating func parseParameterList() throws -> [MacroParameter] {
        try expect(.op("("), "(")
        var parameters = [MacroParameter]()
        while !accept(.op(")")) {
            if !parameters.isEmpty { try expect(.op(","), ",") }
            if accept(.op(")")) { break }
            let parameterName = try expectAnyName()
            var defaultValue: Expression?
            if accept(.op("=")) { defaultValue = try parseExpression() }
            parameters.append(MacroParameter(name: parameterName, defaultValue: defaultValue))
        }
        return parameters
    }

    /// `| name(args) | name ...` as in filter blocks and block sets.
    mutating func parseFilterChain() throws -> [(name: String, arguments: [CallArgument])] {
        var filters = [(name: String, arguments: [CallArgument])]()
        if current?.kind != .op("|") { filters.append((try expectAnyName(), try parseOptionalCallArguments())) }
        while accept(.op("|")) { filters.append((try expectAnyName(), try parseOptionalCallArguments())) }
        return filters
    }

    /// Loop/assignment targets: `a` or `a, b` or `(a, b)`.
    mutating func parseTargetNames() throws -> [String] {
        let parenthesised = accept(.op("("))
        var names = [try expectAnyName()]
        while accept(.op(",")) {
            if case .name = current?.kind { names.append(try expectAnyName()) } else { break }
        }
        if parenthesised { try expect(.op(")"), ")") }
        return names
    }

    // MARK: - Token helpers

    mutating func accept(_ kind: TemplateToken.Kind) -> Bool {
        guard current?.kind == kind else { return false }
        index += 1
        return true
    }

    mutating func acceptName(_ word: String) -> Bool { accept(.name(word)) }

    mutating func expect(_ kind: TemplateToken.Kind, _ spelling: String) throws {
        guard accept(kind) else { throw syntax("expected '\(spelling)'\(foundDescription)", line: line) }
    }

    mutating func expectName(_ word: String) throws { try expect(.name(word), word) }

    mutating func expectAnyName() throws -> String {
        guard case .name(let word) = current?.kind else { throw syntax("expected a name\(foundDescription)", line: line) }
        index += 1
        return word
    }

    var foundDescription: String {
        guard let token = current else { return " before the end of the template" }
        switch token.kind {
        case .text: return ", found text"
        case .variableBegin: return ", found {{"
        case .blockBegin: return ", found {%"
        case .variableEnd: return ", found }}"
        case .blockEnd: return ", found %}"
        case .name(let word): return ", found '\(word)'"
        case .string(let text): return ", found string '\(text)'"
        case .integer(let value): return ", found \(value)"
        case .float(let value): return ", found \(value)"
        case .op(let op): return ", found '\(op)'"
        }
    }
}
