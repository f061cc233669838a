import Foundation

// MARK: - Expressions

/// An expression node with its source line (for error messages).
final class Expression {
    indirect enum Kind {
        case literal(TemplateValue)
        case name(String)
        case list([Expression])
        /// A tuple literal `(a, b)` or `a, b` (evaluated as a list).
        case tuple([Expression])
        case dict([(key: Expression, value: Expression)])
        /// `object.name` (attribute first, then item, as Jinja2's `getattr`).
        case attribute(Expression, String)
        /// `object[key]` (item first, then attribute, as Jinja2's `getitem`).
        case item(Expression, Expression)
        case slice(Expression, start: Expression?, stop: Expression?, step: Expression?)
        case call(Expression, [CallArgument])
        case filter(Expression, name: String, [CallArgument])
        /// `value is [not] name(args)`.
        case test(Expression, name: String, [CallArgument], negated: Bool)
        case unary(String, Expression)
        case binary(String, Expression, Expression)
        /// Chained comparison `a < b <= c`: operators and operands after the first.
        case compare(Expression, [(op: String, Expression)])
        case and(Expression, Expression)
        case or(Expression, Expression)
        case not(Expression)
        /// `then if condition else otherwise` (`otherwise` nil: undefined).
        case conditional(then: Expression, condition: Expression, otherwise: Expression?)
    }

    let kind: Kind
    let line: Int

    init(_ kind: Kind, line: Int) {
        self.kind = kind
        self.line = line
    }
}

/// One call argument: positional (`name` nil) or keyword.
struct CallArgument {
    var name: String?
    var value: Expression
}

// MARK: - Statements

/// A node of the template body with its source line.
final class Statement {
    indirect enum Kind {
        case text(String)
        case output(Expression)
        case ifChain([(condition: Expression, body: [Statement])], otherwise: [Statement])
        case forLoop(ForLoop)
        /// `set a = x` or `set a, b = x`.
        case set(targets: [String], Expression)
        /// `set ns.attr = x`.
        case setAttribute(object: String, attribute: String, Expression)
        /// `set name %}body{% endset` (the rendered body, through optional filters).
        case setBlock(target: String, body: [Statement], filters: [(name: String, arguments: [CallArgument])])
        case macro(Macro)
        /// `call(params) macro(args) %}body{% endcall`: the body is `caller` inside the macro.
        case callBlock(callee: Expression, callerParameters: [MacroParameter], body: [Statement])
        /// `filter name %}body{% endfilter`.
        case filterBlock(filters: [(name: String, arguments: [CallArgument])], body: [Statement])
        /// transformers' `generation` tag (assistant masks): renders its body.
        case generation([Statement])
        case breakLoop
        case continueLoop
    }

    let kind: Kind
    let line: Int

    init(_ kind: Kind, line: Int) {
        self.kind = kind
        self.line = line
    }
}

/// `for targets in iterable [if filter] %}body{% else %}otherwise{% endfor`.
struct ForLoop {
    var targets: [String]
    var iterable: Expression
    var filter: Expression?
    var body: [Statement]
    var otherwise: [Statement]
}

struct MacroParameter {
    var name: String
    var defaultValue: Expression?
}

/// `macro name(parameters) %}body{% endmacro`.
struct Macro {
    var name: String
    var parameters: [MacroParameter]
    var body: [Statement]
}
