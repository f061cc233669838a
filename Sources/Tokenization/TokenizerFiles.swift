import Foundation

// MARK: - Tokenizer files of model directories

/// Writes and copies the tokenizer files of a Hugging Face model directory
/// (`tokenizer.json`, `tokenizer_config.json`, `special_tokens_map.json`; `copy` also carries `chat_template.jinja`).
public enum TokenizerFiles {
    /// The file names copied with a model.
    public static let fileNames = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]
    /// The files `copy` carries: the tokenizer files and the model's chat template (transformers 5 keeps it apart).
    public static let copiedFileNames = fileNames + [ChatTemplate.modelFileName]

    /// Special tokens of the byte tokenizer: ids 256, 257, 258.
    public static let byteSpecialTokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

    // MARK: - The built-in byte tokenizer

    /// The byte tokenizer's `tokenizer.json`: BPE without merges over the 256 byte-level characters
    /// (byte b = id b), ByteLevel pre-tokenizer without regex, ByteLevel decoder, and the special tokens
    /// `<|endoftext|>` 256 (pad), `<|im_start|>` 257, `<|im_end|>` 258 (EOS).
    public static func byteTokenizerJSON() throws -> Data {
        var vocabulary = [String: Int]()
        for byte in 0..<256 { vocabulary[String(ByteLevelAlphabet.characterOfByte[byte])] = byte }
        let addedTokens: [[String: Any]] = byteSpecialTokens.enumerated().map { index, content in
            ["id": 256 + index, "content": content, "single_word": false, "lstrip": false, "rstrip": false,
             "normalized": false, "special": true]
        }
        let byteLevel: [String: Any] = ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false]
        let document: [String: Any] = [
            "version": "1.0",
            "truncation": NSNull(),
            "padding": NSNull(),
            "added_tokens": addedTokens,
            "normalizer": NSNull(),
            "pre_tokenizer": byteLevel,
            "post_processor": NSNull(),
            "decoder": byteLevel,
            "model": [
                "type": "BPE", "dropout": NSNull(), "unk_token": NSNull(), "continuing_subword_prefix": NSNull(),
                "end_of_word_suffix": NSNull(), "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                "vocab": vocabulary, "merges": [String](),
            ] as [String: Any],
        ]
        return try JSONSerialization.data(withJSONObject: document, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
    }

    /// The byte tokenizer's `tokenizer_config.json`: no BOS, EOS `<|im_end|>`, pad `<|endoftext|>`, ChatML template.
    public static func byteTokenizerConfigJSON() throws -> Data {
        var decoder = [String: Any]()
        for (index, content) in byteSpecialTokens.enumerated() {
            decoder[String(256 + index)] = ["content": content, "single_word": false, "lstrip": false, "rstrip": false,
                                            "normalized": false, "special": true]
        }
        let document: [String: Any] = [
            "added_tokens_decoder": decoder,
            "bos_token": NSNull(),
            "eos_token": "<|im_end|>",
            "pad_token": "<|endoftext|>",
            "unk_token": NSNull(),
            "chat_template": ChatTemplate.chatmlJinja,
            "clean_up_tokenization_spaces": false,
            "model_max_length": 1024,
            "tokenizer_class": "PreTrainedTokenizerFast",
        ]
        return try JSONSerialization.data(withJSONObject: document, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
    }

    /// The byte tokenizer's `special_tokens_map.json`.
    public static func byteSpecialTokensMapJSON() throws -> Data {
        let document: [String: Any] = ["eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"]
        return try JSONSerialization.data(withJSONObject: document, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
    }

    /// The built-in byte tokenizer (the same files `writeByteTokenizer` writes, read through the one BPE path).
    public static func byteTokenizer() throws -> BPETokenizer {
        try BPETokenizer(tokenizerJSON: byteTokenizerJSON(), tokenizerConfigJSON: byteTokenizerConfigJSON(),
                         specialTokensMapJSON: byteSpecialTokensMapJSON(), sourcePath: "byte")
    }

    /// Writes the byte tokenizer's three files into `directory` (created if missing).
    public static func writeByteTokenizer(to directory: URL) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try byteTokenizerJSON().write(to: directory.appendingPathComponent("tokenizer.json"), options: .atomic)
        try byteTokenizerConfigJSON().write(to: directory.appendingPathComponent("tokenizer_config.json"), options: .atomic)
        try byteSpecialTokensMapJSON().write(to: directory.appendingPathComponent("special_tokens_map.json"), options: .atomic)
    }

    /// Copies the tokenizer files of model directory `source` into `destination` (replacing existing ones).
    /// `tokenizer.json` must exist; the others are copied when present.
    public static func copy(from source: URL, to destination: URL) throws {
        let manager = FileManager.default
        guard manager.fileExists(atPath: source.appendingPathComponent("tokenizer.json").path) else {
            throw TokenizerError.fileNotFound(path: source.path)
        }
        try manager.createDirectory(at: destination, withIntermediateDirectories: true)
        for name in copiedFileNames {
            let from = source.appendingPathComponent(name)
            let to = destination.appendingPathComponent(name)
            guard manager.fileExists(atPath: from.path) else { continue }
            if from.standardizedFileURL == to.standardizedFileURL { continue }
            if manager.fileExists(atPath: to.path) { try manager.removeItem(at: to) }
            try manager.copyItem(at: from, to: to)
        }
    }
}
