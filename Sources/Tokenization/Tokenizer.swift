import Foundation

// MARK: - Tokenizer protocol

/// A text <-> token id mapping as the trainer uses it. Ids are `Int32` because model inputs are.
///
/// The one implementation is `BPETokenizer` (byte-level BPE read from a Hugging Face `tokenizer.json`);
/// the built-in byte tokenizer is such a file too (see `TokenizerFiles`), so there is one code path.
public protocol Tokenizer: AnyObject, Sendable {
    /// Number of ids (model vocabulary plus added tokens): the largest id + 1.
    var vocabularySize: Int { get }
    /// Beginning-of-sequence id from `tokenizer_config.json`'s `bos_token`, if any.
    var bosTokenId: Int32? { get }
    /// End-of-sequence id from `tokenizer_config.json`'s `eos_token`, if any.
    var eosTokenId: Int32? { get }
    /// Padding id from `tokenizer_config.json`'s `pad_token`, if any.
    var padTokenId: Int32? { get }
    /// The model's chat template (`chat_template.jinja`, else `tokenizer_config.json`; `.none` when there is none).
    var chatTemplate: ChatTemplate { get }

    /// Token ids of `text`.
    /// - Parameters:
    ///   - addSpecialTokens: run the post-processor (adds BOS where `tokenizer.json` says so).
    ///   - parseSpecialTokens: match special tokens written in the text (`<|im_end|>` becomes one id);
    ///     when false they are encoded as plain text (Hugging Face's `split_special_tokens`).
    func encode(_ text: String, addSpecialTokens: Bool, parseSpecialTokens: Bool) -> [Int32]
    /// Text of `ids`; unknown ids are skipped.
    func decode(_ ids: [Int32], skipSpecialTokens: Bool) -> String
    /// Id of a vocabulary entry or added token, written as stored (byte-level characters for BPE entries).
    func tokenToId(_ token: String) -> Int32?
    /// Vocabulary entry or added token of an id, written as stored.
    func idToToken(_ id: Int32) -> String?
    /// Whether `id` is a special added token (`<|im_end|>`, ...).
    func isSpecialToken(_ id: Int32) -> Bool
}

extension Tokenizer {
    /// Encodes without the post-processor, parsing special tokens: what chat-template text needs.
    public func encode(_ text: String) -> [Int32] {
        encode(text, addSpecialTokens: false, parseSpecialTokens: true)
    }

    /// Decodes keeping special tokens.
    public func decode(_ ids: [Int32]) -> String { decode(ids, skipSpecialTokens: false) }

    /// The id used for right padding: pad, else EOS, else 0 (padding positions are never attended to).
    public var paddingId: Int32 { padTokenId ?? eosTokenId ?? 0 }
}

// MARK: - Errors

/// Why a tokenizer could not be loaded.
public enum TokenizerError: Error, LocalizedError, CustomStringConvertible, Equatable {
    case fileNotFound(path: String)
    case unreadable(path: String, problem: String)
    case unsupported(path: String, component: String, what: String)
    case malformed(path: String, problem: String)

    public var description: String {
        switch self {
        case .fileNotFound(let path):
            return "\(path): no tokenizer.json found (give a tokenizer.json file, a model directory holding one, or 'byte')"
        case .unreadable(let path, let problem):
            return "\(path): cannot read: \(problem)"
        case .unsupported(let path, let component, let what):
            return "\(path): unsupported \(component) '\(what)' (supported: BPE, byte-level or with byte_fallback; "
                + "pre-tokenizers ByteLevel, Split, Digits, Metaspace; normalizers NFC, NFKC, Replace, Prepend, Strip; "
                + "decoders ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip; TemplateProcessing/ByteLevel post-processor)"
        case .malformed(let path, let problem):
            return "\(path): malformed tokenizer file: \(problem)"
        }
    }

    public var errorDescription: String? { description }
}

// MARK: - Loading

/// Loads a tokenizer from a `tokenizer.json` file or a directory holding one.
///
/// Special token ids and the chat template come from `tokenizer_config.json` next to it (and
/// `special_tokens_map.json` as a fallback for the special tokens), when present.
/// The word `byte` (as a relative path naming no file) gives the built-in byte tokenizer.
public func loadTokenizer(from url: URL) throws -> any Tokenizer {
    if url.relativePath == "byte" && !FileManager.default.fileExists(atPath: url.path) {
        return try TokenizerFiles.byteTokenizer()
    }
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
        throw TokenizerError.fileNotFound(path: url.path)
    }
    let fileURL = isDirectory.boolValue ? url.appendingPathComponent("tokenizer.json") : url
    guard FileManager.default.fileExists(atPath: fileURL.path) else {
        throw TokenizerError.fileNotFound(path: url.path)
    }
    let directory = fileURL.deletingLastPathComponent()
    let tokenizerData = try readFile(fileURL)
    let configURL = directory.appendingPathComponent("tokenizer_config.json")
    let mapURL = directory.appendingPathComponent("special_tokens_map.json")
    let configData = FileManager.default.fileExists(atPath: configURL.path) ? try readFile(configURL) : nil
    let mapData = FileManager.default.fileExists(atPath: mapURL.path) ? try readFile(mapURL) : nil
    let tokenizer = try BPETokenizer(tokenizerJSON: tokenizerData, tokenizerConfigJSON: configData,
                                     specialTokensMapJSON: mapData, sourcePath: fileURL.path)
    if let modelFile = try ChatTemplate.modelFile(in: directory) { tokenizer.chatTemplate = modelFile }
    return tokenizer
}

private func readFile(_ url: URL) throws -> Data {
    do { return try Data(contentsOf: url) } catch {
        throw TokenizerError.unreadable(path: url.path, problem: error.localizedDescription)
    }
}
