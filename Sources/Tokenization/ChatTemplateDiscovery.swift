import Foundation

// MARK: - Where a model's chat template is found

extension ChatTemplate {
    /// The file transformers 5 saves the template in, beside the tokenizer files.
    public static let modelFileName = "chat_template.jinja"

    /// `chat_template.jinja` of a model directory, or nil when the directory has none.
    public static func modelFile(in directory: URL) throws -> ChatTemplate? {
        let url = directory.appendingPathComponent(modelFileName)
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        guard let text = try? String(contentsOf: url, encoding: .utf8) else {
            throw TokenizerError.unreadable(path: url.path, problem: "not UTF-8 text")
        }
        return ChatTemplate(rawValue: url.path, source: text, origin: .modelFile(path: url.path))
    }

    /// The `chat_template` text read from the `tokenizer_config.json` beside `tokenizerPath` (already
    /// resolved to one text: a string, or the template named "default" of a list), or `.none`.
    static func fromTokenizerConfig(_ source: String?, tokenizerPath: String) -> ChatTemplate {
        guard let source else { return .none }
        let configPath = URL(fileURLWithPath: tokenizerPath).deletingLastPathComponent()
            .appendingPathComponent("tokenizer_config.json").path
        let place = tokenizerPath == "byte" ? "byte tokenizer_config.json" : configPath
        return ChatTemplate(rawValue: place, source: source, origin: .tokenizerConfig(path: place))
    }

    /// The template the trainer uses: an explicit `--chat-template` wins over the model's own.
    public static func resolve(override: ChatTemplate?, tokenizer: any Tokenizer) -> ChatTemplate {
        override ?? tokenizer.chatTemplate
    }

    /// Copies the model's template files into a checkpoint directory so transformers loads the same
    /// template: `chat_template.jinja` when `template` has text (the model's or the `--chat-template`
    /// one, which wins), nothing for `.none`.
    public static func writeModelFile(_ template: ChatTemplate, to directory: URL) throws {
        guard let source = template.source else { return }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try Data(source.utf8).write(to: directory.appendingPathComponent(modelFileName), options: .atomic)
    }
}
