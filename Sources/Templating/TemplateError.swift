import Foundation

// MARK: - Errors

/// Why a template could not be parsed or rendered. Every case names the template (its file or
/// `tokenizer_config.json` key) and the 1-based line of the construct at fault.
public struct TemplateError: Error, LocalizedError, CustomStringConvertible, Equatable {
    public enum Kind: Equatable, Sendable {
        /// The template text is not valid Jinja (unclosed tag, unexpected token, ...).
        case syntax
        /// Valid Jinja this engine does not implement (`include`, `extends`, a filter it lacks, ...).
        case unsupported
        /// The template called `raise_exception(message)`: the message is the template's own words.
        case raised
        /// A runtime error: undefined attribute, wrong type, division by zero, ...
        case runtime
        /// A sandbox bound was hit (loop iterations, recursion depth, output size).
        case limit
    }

    public var kind: Kind
    public var message: String
    /// The template's name (a file path or `tokenizer_config.json:chat_template`).
    public var template: String
    public var line: Int

    public init(_ kind: Kind, _ message: String, template: String = "<template>", line: Int = 0) {
        self.kind = kind
        self.message = message
        self.template = template
        self.line = line
    }

    public var description: String {
        let place = "\(template):\(line)"
        switch kind {
        case .syntax: return "\(place): chat template syntax error: \(message)"
        case .unsupported: return "\(place): chat template uses \(message), which this Jinja engine does not support"
        case .raised: return "\(place): the chat template refused the messages: \(message)"
        case .runtime: return "\(place): chat template error: \(message)"
        case .limit: return "\(place): chat template stopped: \(message)"
        }
    }

    public var errorDescription: String? { description }

    /// The same error placed at `line` of `template` when it has no place yet.
    func placed(template: String, line: Int) -> TemplateError {
        var copy = self
        if copy.line == 0 { copy.line = line }
        if copy.template == "<template>" { copy.template = template }
        return copy
    }
}
