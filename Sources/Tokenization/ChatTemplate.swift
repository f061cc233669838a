import Foundation

// MARK: - Messages

/// One chat turn: `{"role": ..., "content": ...}`.
public struct ChatMessage: Equatable, Hashable, Codable, Sendable {
    public var role: String
    public var content: String
    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }
}

// MARK: - Templates

/// The chat templates the trainer renders itself (no Jinja engine): ChatML, Llama-3, or none.
/// No default system prompt is ever injected.
public enum ChatTemplate: String, CaseIterable, Codable, Sendable {
    /// `<|im_start|>{role}\n{content}<|im_end|>\n` per message; generation prompt `<|im_start|>assistant\n`.
    case chatml
    /// `{bos}` once, then `<|start_header_id|>{role}<|end_header_id|>\n\n{content, trimmed}<|eot_id|>` per message;
    /// generation prompt `<|start_header_id|>assistant<|end_header_id|>\n\n`.
    case llama3
    /// No template: conversational data cannot be rendered.
    case none

    /// The Jinja text `TokenizerFiles` writes for ChatML (Hugging Face renders it exactly like `render`).
    public static let chatmlJinja = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
        + "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
        + "{{ '<|im_start|>assistant\\n' }}{% endif %}"

    /// The template a `chat_template` text is written for, recognised by its markers; `.none` when absent or unknown.
    public static func recognise(_ source: String?) -> ChatTemplate {
        guard let source else { return .none }
        if source.contains("<|im_start|>") { return .chatml }
        if source.contains("<|start_header_id|>") && source.contains("<|eot_id|>") { return .llama3 }
        return .none
    }

    /// One line saying what was recognised, for the CLI to print at start.
    public static func recognitionSummary(source: String?, override: ChatTemplate?) -> String {
        if let override { return "chat template: \(override.rawValue) (from --chat-template)" }
        guard let source else { return "chat template: none (tokenizer_config.json has no chat_template)" }
        let recognised = recognise(source)
        if recognised == .none {
            return "chat template: none (chat_template in tokenizer_config.json not recognised; use --chat-template chatml|llama3)"
        }
        return "chat template: \(recognised.rawValue) (recognised in tokenizer_config.json)"
    }

    /// The rendered text of `messages`.
    /// - Parameters:
    ///   - addGenerationPrompt: append the header of an assistant turn.
    ///   - bosToken: text of the BOS token (Llama-3 puts it before the first message).
    public func render(_ messages: [ChatMessage], addGenerationPrompt: Bool, bosToken: String?) throws -> String {
        var text = ""
        switch self {
        case .chatml:
            for message in messages { text += "<|im_start|>\(message.role)\n\(message.content)<|im_end|>\n" }
            if addGenerationPrompt { text += "<|im_start|>assistant\n" }
        case .llama3:
            for (index, message) in messages.enumerated() {
                if index == 0 { text += bosToken ?? "" }
                let content = message.content.trimmingCharacters(in: .whitespacesAndNewlines)
                text += "<|start_header_id|>\(message.role)<|end_header_id|>\n\n\(content)<|eot_id|>"
            }
            if addGenerationPrompt { text += "<|start_header_id|>assistant<|end_header_id|>\n\n" }
        case .none:
            throw ChatTemplateError.noTemplate
        }
        return text
    }
}

/// Why messages could not be rendered.
public enum ChatTemplateError: Error, LocalizedError, CustomStringConvertible {
    case noTemplate

    public var description: String {
        switch self {
        case .noTemplate:
            return "conversational data needs a chat template, and the tokenizer has none recognised: "
                + "pass --chat-template chatml or --chat-template llama3"
        }
    }

    public var errorDescription: String? { description }
}
