import Foundation
import Templating

// MARK: - Messages

/// One chat turn: `{"role": ..., "content": ...}`.
public struct ChatMessage: Equatable, Hashable, Codable, Sendable {
    public var role: String
    public var content: String
    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }

    /// The message as the template sees it: a dict with `role` then `content`.
    var templateValue: TemplateValue {
        .dict(TemplateDictionary([("role", .string(role)), ("content", .string(content))]))
    }
}

// MARK: - Templates

/// A chat template: Jinja text rendered by the `Templating` engine exactly as transformers'
/// `apply_chat_template` renders it (the model's own text, never a look-alike), or none.
///
/// Where it comes from (`origin`), in transformers' order: `chat_template.jinja` in the model
/// directory, else `tokenizer_config.json`'s `chat_template`; `--chat-template` (a built-in name
/// `chatml`/`llama3`, `none`, or a `.jinja` file) replaces the model's template when given.
public struct ChatTemplate: RawRepresentable, Hashable, Codable, Sendable, CaseIterable, CustomStringConvertible {
    public enum Origin: Equatable, Hashable, Sendable {
        case builtin
        /// A file named by `--chat-template`.
        case file(path: String)
        /// `chat_template.jinja` of a model directory.
        case modelFile(path: String)
        /// `chat_template` of a `tokenizer_config.json`.
        case tokenizerConfig(path: String)
        case none
    }

    /// The name or path `--chat-template` takes for this template (`chatml`, `llama3`, `none`, a file path).
    public let rawValue: String
    /// The Jinja text (nil for `.none`).
    public let source: String?
    public let origin: Origin
    /// The parsed template, or why the text is not a template this engine renders (reported at first use).
    private let parsed: Result<Template, TemplateError>?

    init(rawValue: String, source: String?, origin: Origin) {
        self.rawValue = rawValue
        self.source = source
        self.origin = origin
        parsed = source.map { text in Result { try Template(source: text, name: Self.templateName(rawValue, origin)) }
            .mapError { $0 as? TemplateError ?? TemplateError(.syntax, "\($0)") } }
    }

    /// A built-in name, `none`, or a readable Jinja file; nil otherwise (`named` says why).
    public init?(rawValue: String) {
        guard let template = try? Self.named(rawValue) else { return nil }
        self = template
    }

    /// What `--chat-template VALUE` means: `chatml`, `llama3`, `none`, or the path of a Jinja file.
    public static func named(_ value: String) throws -> ChatTemplate {
        if let builtin = allCases.first(where: { $0.rawValue == value }) { return builtin }
        let url = URL(fileURLWithPath: value)
        guard FileManager.default.fileExists(atPath: url.path) else { throw ChatTemplateError.unknownName(value) }
        guard let text = try? String(contentsOf: url, encoding: .utf8) else { throw ChatTemplateError.unreadable(path: value) }
        return ChatTemplate(rawValue: value, source: text, origin: .file(path: value))
    }

    /// ChatML: `<|im_start|>{role}\n{content}<|im_end|>\n` per message; generation prompt `<|im_start|>assistant\n`.
    public static let chatml = ChatTemplate(rawValue: "chatml", source: chatmlJinja, origin: .builtin)
    /// Llama-3 without a system header block: `{bos}` once, then
    /// `<|start_header_id|>{role}<|end_header_id|>\n\n{content|trim}<|eot_id|>` per message.
    public static let llama3 = ChatTemplate(rawValue: "llama3", source: llama3Jinja, origin: .builtin)
    /// No template: conversational data cannot be rendered.
    public static let none = ChatTemplate(rawValue: "none", source: nil, origin: .none)

    public static var allCases: [ChatTemplate] { [.chatml, .llama3, .none] }

    /// The Jinja text `TokenizerFiles` writes for ChatML.
    public static let chatmlJinja = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
        + "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
        + "{{ '<|im_start|>assistant\\n' }}{% endif %}"

    /// The built-in Llama-3 text (no date header: use the model's own template for that).
    public static let llama3Jinja = "{% for message in messages %}{% if loop.first %}{{ bos_token }}{% endif %}"
        + "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}"
        + "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"

    /// Two templates are the same when their text is (wherever it was read from).
    public static func == (a: ChatTemplate, b: ChatTemplate) -> Bool { a.source == b.source }
    public func hash(into hasher: inout Hasher) { hasher.combine(source) }

    /// The name errors give for the template: its file, or the config key it came from.
    private static func templateName(_ rawValue: String, _ origin: Origin) -> String {
        switch origin {
        case .builtin: return "built-in \(rawValue) template"
        case .file(let path), .modelFile(let path): return path
        case .tokenizerConfig(let path): return "\(path) (chat_template)"
        case .none: return "none"
        }
    }

    public var description: String { rawValue }

    // MARK: - Rendering

    /// The rendered text of `messages`, with transformers' variables: `messages`, `tools` (none),
    /// `add_generation_prompt` and the special tokens (`bos_token`, `eos_token`, `pad_token` as text).
    public func render(_ messages: [ChatMessage], addGenerationPrompt: Bool, specialTokens: [String: String],
                       clock: TemplateClock = .system) throws -> String {
        guard let parsed else { throw ChatTemplateError.noTemplate }
        let template = try parsed.get()
        var variables: [String: TemplateValue] = [
            "messages": .list(messages.map(\.templateValue)),
            "tools": .none,
            "documents": .none,
            "add_generation_prompt": .bool(addGenerationPrompt),
        ]
        for (name, token) in specialTokens { variables[name] = .string(token) }
        return try template.render(variables, clock: clock)
    }

    /// `render` with only a BOS token (ChatML and the built-in Llama-3 need no other).
    public func render(_ messages: [ChatMessage], addGenerationPrompt: Bool, bosToken: String?) throws -> String {
        try render(messages, addGenerationPrompt: addGenerationPrompt,
                   specialTokens: bosToken.map { ["bos_token": $0] } ?? [:])
    }

    /// One line for the CLI to print at start: where the template comes from and its first line.
    public var summary: String {
        let place: String
        switch origin {
        case .builtin: place = "built-in \(rawValue) (from --chat-template)"
        case .file(let path): place = "\(path) (from --chat-template)"
        case .modelFile(let path): place = path
        case .tokenizerConfig(let path): place = "chat_template of \(path)"
        case .none: return "chat template: none (no chat_template.jinja, no chat_template in tokenizer_config.json)"
        }
        let firstLine = (source ?? "").split(separator: "\n", omittingEmptySubsequences: true).first.map(String.init) ?? ""
        let shown = firstLine.count > 80 ? String(firstLine.prefix(77)) + "..." : firstLine
        return "chat template: \(place), first line: \(shown)"
    }
}

extension Tokenizer {
    /// The special tokens a chat template sees, as transformers passes them (`bos_token`, `eos_token`,
    /// `pad_token`: the texts of the tokenizer's ids, only those it has).
    public var chatSpecialTokens: [String: String] {
        var tokens = [String: String]()
        if let text = bosTokenId.flatMap(idToToken) { tokens["bos_token"] = text }
        if let text = eosTokenId.flatMap(idToToken) { tokens["eos_token"] = text }
        if let text = padTokenId.flatMap(idToToken) { tokens["pad_token"] = text }
        return tokens
    }

    /// `messages` rendered by `template` (or the tokenizer's own) with this tokenizer's special tokens.
    public func renderChat(_ messages: [ChatMessage], addGenerationPrompt: Bool, template: ChatTemplate? = nil) throws -> String {
        try (template ?? chatTemplate).render(messages, addGenerationPrompt: addGenerationPrompt, specialTokens: chatSpecialTokens)
    }
}

/// Why messages could not be rendered.
public enum ChatTemplateError: Error, LocalizedError, CustomStringConvertible, Equatable {
    case noTemplate
    case unknownName(String)
    case unreadable(path: String)

    public var description: String {
        switch self {
        case .noTemplate:
            return "conversational data needs a chat template, and the model has none (no chat_template.jinja, no "
                + "chat_template in tokenizer_config.json): pass --chat-template chatml, llama3 or a .jinja file"
        case .unknownName(let value):
            return "--chat-template \(value): expected chatml, llama3, none, auto or a .jinja file (there is no such file)"
        case .unreadable(let path):
            return "--chat-template \(path): cannot read the file as UTF-8 text"
        }
    }

    public var errorDescription: String? { description }
}
