import Foundation

// MARK: - Statement evaluation

/// Renders a statement tree: one instance per render (it counts loop iterations and call depth).
final class TemplateEvaluator {
    enum Flow { case normal, breakLoop, continueLoop }

    let name: String
    let limits: TemplateLimits
    private(set) var iterations = 0
    var callDepth = 0
    /// Line of the construct being evaluated, for errors raised without one.
    var currentLine = 0

    init(name: String, limits: TemplateLimits) {
        self.name = name
        self.limits = limits
    }

    func error(_ kind: TemplateError.Kind, _ message: String) -> TemplateError {
        TemplateError(kind, message, template: name, line: currentLine)
    }

    /// Renders `body` into `output`; returns how the body ended (`break`/`continue` inside a loop).
    func execute(_ body: [Statement], scope: TemplateScope, into output: inout String) throws -> Flow {
        for statement in body {
            currentLine = statement.line
            switch statement.kind {
            case .text(let text):
                try append(text, to: &output)
            case .output(let expression):
                try append(try evaluate(expression, scope).pythonString, to: &output)
            case .ifChain(let branches, let otherwise):
                var chosen = otherwise
                for branch in branches where try evaluate(branch.condition, scope).isTruthy {
                    chosen = branch.body
                    break
                }
                let flow = try execute(chosen, scope: scope, into: &output)
                if flow != .normal { return flow }
            case .forLoop(let loop):
                try executeFor(loop, scope: scope, into: &output)
            case .set(let targets, let expression):
                try assign(try evaluate(expression, scope), to: targets, in: scope)
            case .setAttribute(let object, let attribute, let expression):
                guard case .namespace(let namespace)? = scope.lookup(object) else {
                    throw error(.runtime, "cannot assign attribute on non-namespace object '\(object)'")
                }
                namespace.attributes[attribute] = try evaluate(expression, scope)
            case .setBlock(let target, let body, let filters):
                var text = try render(body, scope: TemplateScope(parent: scope))
                for filter in filters {
                    text = try applyFilter(filter.name, to: text, arguments: filter.arguments, scope: scope)
                }
                scope.set(target, text)
            case .macro(let macro):
                scope.set(macro.name, .function(makeMacro(macro, definedIn: scope)))
            case .callBlock(let callee, let callerParameters, let body):
                let caller = makeMacro(Macro(name: "caller", parameters: callerParameters, body: body), definedIn: scope)
                try append(try evaluateCall(callee, scope, extraKeyword: ("caller", .function(caller))).pythonString, to: &output)
            case .filterBlock(let filters, let body):
                var text = try render(body, scope: TemplateScope(parent: scope))
                for filter in filters {
                    text = try applyFilter(filter.name, to: text, arguments: filter.arguments, scope: scope)
                }
                try append(text.pythonString, to: &output)
            case .generation(let body):
                let flow = try execute(body, scope: scope, into: &output)
                if flow != .normal { return flow }
            case .breakLoop: return .breakLoop
            case .continueLoop: return .continueLoop
            }
        }
        return .normal
    }

    /// `body` rendered to a string value.
    func render(_ body: [Statement], scope: TemplateScope) throws -> TemplateValue {
        var text = ""
        _ = try execute(body, scope: scope, into: &text)
        return .string(text)
    }

    private func append(_ text: String, to output: inout String) throws {
        output += text
        if output.utf8.count > limits.maxOutputBytes {
            throw error(.limit, "the rendered text exceeds \(limits.maxOutputBytes) bytes")
        }
    }

    private func applyFilter(_ filterName: String, to value: TemplateValue, arguments: [CallArgument],
                             scope: TemplateScope) throws -> TemplateValue {
        try callFilter(filterName, value, try evaluateArguments(arguments, scope))
    }

    /// `set a = x` or `set a, b = pair`.
    private func assign(_ value: TemplateValue, to targets: [String], in scope: TemplateScope) throws {
        guard targets.count > 1 else { return scope.set(targets[0], value) }
        let items = try iterate(value)
        guard items.count == targets.count else {
            throw error(.runtime, "cannot unpack \(items.count) value(s) into \(targets.count) name(s)")
        }
        for (target, item) in zip(targets, items) { scope.set(target, item) }
    }

    /// Counts one loop iteration against the sandbox bound.
    func countIteration() throws {
        iterations += 1
        if iterations > limits.maxLoopIterations {
            throw error(.limit, "more than \(limits.maxLoopIterations) loop iterations (the sandbox's bound)")
        }
    }
}

// MARK: - Loops

extension TemplateEvaluator {
    private func executeFor(_ loop: ForLoop, scope: TemplateScope, into output: inout String) throws {
        let line = currentLine
        var items = try iterate(try evaluate(loop.iterable, scope))
        if let filter = loop.filter {
            items = try items.filter { item in
                try countIteration()
                let filterScope = TemplateScope(parent: scope)
                try assign(item, to: loop.targets, in: filterScope)
                return try evaluate(filter, filterScope).isTruthy
            }
        }
        if items.isEmpty {
            _ = try execute(loop.otherwise, scope: scope, into: &output)
            return
        }
        for (position, item) in items.enumerated() {
            try countIteration()
            currentLine = line
            let iterationScope = TemplateScope(parent: scope)
            try assign(item, to: loop.targets, in: iterationScope)
            iterationScope.set("loop", loopObject(items: items, position: position))
            if try execute(loop.body, scope: iterationScope, into: &output) == .breakLoop { break }
        }
    }

    /// Jinja2's `loop`: index (1-based), index0, revindex, revindex0, first, last, length, previtem,
    /// nextitem, depth, depth0 and `cycle(...)`.
    private func loopObject(items: [TemplateValue], position: Int) -> TemplateValue {
        let count = items.count
        var loop = TemplateDictionary()
        loop["index"] = .int(position + 1)
        loop["index0"] = .int(position)
        loop["revindex"] = .int(count - position)
        loop["revindex0"] = .int(count - position - 1)
        loop["first"] = .bool(position == 0)
        loop["last"] = .bool(position == count - 1)
        loop["length"] = .int(count)
        loop["depth"] = .int(1)
        loop["depth0"] = .int(0)
        loop["previtem"] = position > 0 ? items[position - 1] : .undefined(hint: "there is no previous item")
        loop["nextitem"] = position + 1 < count ? items[position + 1] : .undefined(hint: "there is no next item")
        loop["cycle"] = .function(TemplateFunction(name: "loop.cycle") { arguments in
            guard !arguments.positional.isEmpty else { throw TemplateError(.runtime, "loop.cycle needs at least one value") }
            return arguments.positional[position % arguments.positional.count]
        })
        return .dict(loop)
    }

    /// The items a `for` walks: a list's items, a dict's keys, a string's characters; undefined is empty.
    func iterate(_ value: TemplateValue) throws -> [TemplateValue] {
        switch value {
        case .list(let items), .tuple(let items): return items
        case .dict(let dictionary): return dictionary.keys.map { .string($0) }
        case .string(let text): return text.unicodeScalars.map { .string(String($0)) }
        case .undefined: return []
        case .namespace(let namespace): return namespace.attributes.keys.map { .string($0) }
        default: throw error(.runtime, "'\(value.typeName)' object is not iterable")
        }
    }
}

// MARK: - Macros

extension TemplateEvaluator {
    /// A macro as a callable: arguments bind to parameters by position then name; defaults are evaluated
    /// at call time; extra positional arguments are `varargs`, extra keywords `kwargs`.
    func makeMacro(_ macro: Macro, definedIn definition: TemplateScope) -> TemplateFunction {
        // Weak: the scope holds the macro, so a strong capture would leak every render's scopes.
        return TemplateFunction(name: macro.name) { [unowned self, weak definition] arguments in
            guard let definition else { throw self.error(.runtime, "macro \(macro.name) called after its render") }
            self.callDepth += 1
            defer { self.callDepth -= 1 }
            if self.callDepth > self.limits.maxCallDepth {
                throw self.error(.limit, "macro calls nested deeper than \(self.limits.maxCallDepth) (the sandbox's bound)")
            }
            let scope = TemplateScope(parent: definition)
            var keywords = TemplateDictionary()
            for (name, value) in arguments.keyword { keywords[name] = value }
            for (position, parameter) in macro.parameters.enumerated() {
                if position < arguments.positional.count {
                    scope.set(parameter.name, arguments.positional[position])
                } else if let value = keywords[parameter.name] {
                    scope.set(parameter.name, value)
                    keywords[parameter.name] = nil
                } else if let defaultValue = parameter.defaultValue {
                    scope.set(parameter.name, try self.evaluate(defaultValue, scope))
                } else {
                    scope.set(parameter.name, .undefined(hint: "parameter '\(parameter.name)' was not provided"))
                }
            }
            if let caller = keywords["caller"] {
                scope.set("caller", caller)
                keywords["caller"] = nil
            }
            scope.set("varargs", .list(Array(arguments.positional.dropFirst(macro.parameters.count))))
            scope.set("kwargs", .dict(keywords))
            let line = self.currentLine
            defer { self.currentLine = line }
            return try self.render(macro.body, scope: scope)
        }
    }
}
