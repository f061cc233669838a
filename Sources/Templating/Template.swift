import Foundation

// MARK: - Templates

/// A parsed Jinja template, rendered as transformers' sandboxed environment renders it
/// (`trim_blocks`, `lstrip_blocks`, `loopcontrols`, transformers' `tojson`, `raise_exception`,
/// `strftime_now`, `namespace`, `dict`, `range`).
///
/// Parsing checks the whole text (an unknown filter fails even in a branch never taken, as in Jinja2).
public final class Template: @unchecked Sendable {
    /// Where the text came from (a file path, or `tokenizer_config.json:chat_template`), used in errors.
    public let name: String
    public let source: String
    private let body: [Statement]

    public init(source: String, name: String) throws {
        self.name = name
        self.source = source
        body = try TemplateParser.parse(source, name: name)
        try TemplateValidator(name: name).check(body)
    }

    /// The rendered text.
    /// - Parameters:
    ///   - variables: the template's inputs (`messages`, `add_generation_prompt`, `bos_token`, ...).
    ///   - clock: the date `strftime_now` formats (`.system` = now, local time).
    ///   - limits: the sandbox's bounds.
    public func render(_ variables: [String: TemplateValue], clock: TemplateClock = .system,
                       limits: TemplateLimits = TemplateLimits()) throws -> String {
        let evaluator = TemplateEvaluator(name: name, limits: limits)
        let globals = TemplateScope(parent: nil)
        for (globalName, value) in TemplateGlobals.functions(evaluator: evaluator, clock: clock) { globals.set(globalName, value) }
        let scope = TemplateScope(parent: globals)
        for (variable, value) in variables { scope.set(variable, value) }
        var output = ""
        do {
            _ = try evaluator.execute(body, scope: scope, into: &output)
        } catch let failure as TemplateError {
            throw failure.placed(template: name, line: evaluator.currentLine)
        }
        return output
    }
}

// MARK: - Parse-time checks

/// Refuses, before any render, filters the engine does not implement (Jinja2 refuses unknown filters
/// when it compiles a template, so the failure does not depend on the messages).
struct TemplateValidator {
    let name: String

    func check(_ body: [Statement]) throws {
        for statement in body { try check(statement) }
    }

    private func check(_ statement: Statement) throws {
        switch statement.kind {
        case .text, .breakLoop, .continueLoop: break
        case .output(let expression): try check(expression)
        case .ifChain(let branches, let otherwise):
            for branch in branches { try check(branch.condition); try check(branch.body) }
            try check(otherwise)
        case .forLoop(let loop):
            try check(loop.iterable)
            if let filter = loop.filter { try check(filter) }
            try check(loop.body)
            try check(loop.otherwise)
        case .set(_, let expression), .setAttribute(_, _, let expression): try check(expression)
        case .setBlock(_, let body, let filters), .filterBlock(let filters, let body):
            for filter in filters { try checkFilter(filter.name, line: statement.line); try check(filter.arguments) }
            try check(body)
        case .macro(let macro):
            for parameter in macro.parameters { if let value = parameter.defaultValue { try check(value) } }
            try check(macro.body)
        case .callBlock(let callee, _, let body): try check(callee); try check(body)
        case .generation(let body): try check(body)
        }
    }

    private func check(_ arguments: [CallArgument]) throws {
        for argument in arguments { try check(argument.value) }
    }

    private func checkFilter(_ filter: String, line: Int) throws {
        guard TemplateEvaluator.filterNames.contains(filter) else {
            throw TemplateError(.unsupported, "the filter '\(filter)'", template: name, line: line)
        }
    }

    private func check(_ expression: Expression) throws {
        switch expression.kind {
        case .literal, .name: break
        case .list(let items), .tuple(let items): for item in items { try check(item) }
        case .dict(let pairs): for pair in pairs { try check(pair.key); try check(pair.value) }
        case .attribute(let object, _): try check(object)
        case .item(let object, let key): try check(object); try check(key)
        case .slice(let object, let start, let stop, let step):
            try check(object)
            for part in [start, stop, step] { if let part { try check(part) } }
        case .call(let callee, let arguments): try check(callee); try check(arguments)
        case .filter(let value, let filter, let arguments):
            try checkFilter(filter, line: expression.line)
            try check(value)
            try check(arguments)
        case .test(let value, _, let arguments, _): try check(value); try check(arguments)
        case .unary(_, let operand), .not(let operand): try check(operand)
        case .binary(_, let left, let right), .and(let left, let right), .or(let left, let right):
            try check(left)
            try check(right)
        case .compare(let first, let operations):
            try check(first)
            for operation in operations { try check(operation.1) }
        case .conditional(let then, let condition, let otherwise):
            try check(then)
            try check(condition)
            if let otherwise { try check(otherwise) }
        }
    }
}
