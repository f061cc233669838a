import Foundation
import Tokenization

// MARK: - Encoding errors, placed in their file

extension Dataset {
    /// Where example `index` came from: its line (JSON Lines) or element (JSON array).
    public func location(ofExample index: Int) -> DataError.Location {
        sourceLocations.indices.contains(index) ? sourceLocations[index] : .element(index)
    }

    /// `error`, thrown while encoding example `index`, as a `DataError` naming the file, the
    /// record's line (or element) and what to do about it; other errors pass unchanged.
    /// `--skip-invalid` is never offered: it skips unreadable records, not ones the template
    /// cannot render. A missing template is blamed on `--chat-template none` when that was given,
    /// else on the model (`encoding.chatTemplate` nil = the model's own).
    public func locating(_ error: Error, example index: Int, encoding: EncodingOptions, tokenizer: any Tokenizer) -> Error {
        guard let encodingError = error as? EncodingError else { return error }
        let problem: String
        switch encodingError {
        case .noChatTemplate:
            problem = Self.missingTemplateProblem(encoding: encoding, tokenizer: tokenizer)
        case .templateNotPrefix(_, let template):
            problem = "the \(template) rendering of the prompt is not a prefix of the rendering of prompt+completion "
                + "(the chat template renders the prompt alone differently)"
        case .templateFailed(_, let message):
            problem = "the chat template cannot render this record: \(message)"
        case .completionNotAssistant(_, let role):
            problem = "role '\(role)': the first and last turns of chosen and rejected must be the assistant's"
        case .noEOSToken, .invalidLengths:
            return error
        }
        return DataError(file: file, location: location(ofExample: index), problem: problem, suggestsSkipping: false)
    }

    /// Why conversational data has no template: the flag, or the model.
    static func missingTemplateProblem(encoding: EncodingOptions, tokenizer: any Tokenizer) -> String {
        let builtins = "--chat-template chatml, llama3 or a .jinja file"
        guard encoding.chatTemplate == ChatTemplate.none else {
            return "the data is conversational (lists of messages) and needs a chat template, and the model has none "
                + "(no chat_template.jinja, no chat_template in tokenizer_config.json): pass \(builtins)"
        }
        let own = tokenizer.chatTemplate
        return "the data is conversational (lists of messages) and --chat-template none turns chat templates off: "
            + (own == ChatTemplate.none ? "pass \(builtins) (the model has no template of its own)"
                : "drop it to use the model's own (\(own.summary.replacingOccurrences(of: "chat template: ", with: ""))), or pass \(builtins)")
    }
}

extension EncodingOptions {
    /// The start-up line naming the template in use: `--chat-template none` is said to be the
    /// flag's doing, not a model without a template.
    public func templateSummary(tokenizer: any Tokenizer) -> String {
        if chatTemplate == ChatTemplate.none { return "chat template: none (--chat-template none)" }
        return ChatTemplate.resolve(override: chatTemplate, tokenizer: tokenizer).summary
    }
}
