import Foundation
import Llama
import Tokenization

/// The library side of `dpo init`: a randomly initialised model directory (config.json,
/// generation_config.json, model.safetensors and the tokenizer files) that `transformers`
/// loads as `LlamaForCausalLM`.
///
/// Vocabulary: the model's `vocab_size` is the preset's unless `vocabularySize` overrides it.
/// The tokenizer must fit: a tokenizer with more ids than the model has rows is refused (its
/// ids would index past the embedding); a smaller one is fine (the byte tokenizer's 259 ids in
/// the `small` preset's 512 rows leave rows that are never used). With a tokenizer directory,
/// the config's bos/eos/pad ids are the tokenizer's, not the preset's byte-tokenizer ids.
public enum ModelInit {

    /// Where the tokenizer files come from.
    public enum TokenizerSource: Equatable, Sendable {
        /// The built-in byte tokenizer (259 ids, ChatML).
        case byte
        /// A directory holding `tokenizer.json` (and optionally `tokenizer_config.json`, `special_tokens_map.json`).
        case directory(String)

        /// `byte`, or a directory path (the `--tokenizer` value).
        public init(argument: String) { self = argument == "byte" ? .byte : .directory(argument) }
    }

    public struct Parameters: Sendable {
        /// The architecture; `LlamaPreset.config` for a named preset.
        public var config: LlamaConfig
        public var outputDirectory: String
        public var seed: UInt64 = 0
        /// dtype of `model.safetensors`.
        public var dtype: WeightDType = .fp32
        public var tokenizer: TokenizerSource = .byte
        /// Overrides the config's `vocab_size` (nil: keep it).
        public var vocabularySize: Int?
        /// Write into a non-empty output directory (its model and tokenizer files are replaced).
        public var overwrite = false

        public init(config: LlamaConfig, outputDirectory: String) {
            self.config = config
            self.outputDirectory = outputDirectory
        }
    }

    /// What was written.
    public struct Summary: Sendable {
        public var directory: URL
        public var config: LlamaConfig
        public var parameterCount: Int
        public var tokenizerVocabularySize: Int
    }

    // MARK: - Writing

    /// Writes the model directory; nothing is written when a check fails.
    public static func write(_ p: Parameters) throws -> Summary {
        let url = URL(fileURLWithPath: p.outputDirectory)
        try checkOutputDirectory(url, overwrite: p.overwrite)

        // The tokenizer decides the special ids; the vocabulary must hold all of its ids.
        let tokenizer: any Tokenizer
        var config = p.config
        switch p.tokenizer {
        case .byte:
            do { tokenizer = try TokenizerFiles.byteTokenizer() } catch {
                throw ModelInitError.tokenizer("cannot build the byte tokenizer: \(error)")
            }
        case .directory(let path):
            do { tokenizer = try loadTokenizer(from: URL(fileURLWithPath: path)) } catch {
                throw ModelInitError.tokenizer("--tokenizer \(path): \(error)")
            }
            config.bosTokenId = tokenizer.bosTokenId.map(Int.init)
            config.eosTokenId = tokenizer.eosTokenId.map(Int.init)
            config.padTokenId = tokenizer.padTokenId.map(Int.init)
        }
        if let size = p.vocabularySize {
            guard size > 0 else { throw ModelInitError.invalidOption("--vocab-size must be positive, got \(size)") }
            config.vocabSize = size
        }
        guard tokenizer.vocabularySize <= config.vocabSize else {
            let source: String
            if case .directory(let path) = p.tokenizer { source = path } else { source = "byte" }
            throw ModelInitError.tokenizer(
                "the tokenizer \(source) has \(tokenizer.vocabularySize) ids but the model's vocab_size is \(config.vocabSize); "
                    + "pass --vocab-size \(tokenizer.vocabularySize) (or larger) or a larger --preset")
        }
        do { try config.validate() } catch { throw ModelInitError.invalidOption("\(error)") }
        try checkMemory(config)

        let weights = WeightInitializer(seed: p.seed).weights(for: config)
        do {
            try ModelDirectory.save(config: config, weights: weights, to: url, dtype: p.dtype)
        } catch { throw ModelInitError.output("cannot write \(url.path): \(error)") }
        do {
            switch p.tokenizer {
            case .byte: try TokenizerFiles.writeByteTokenizer(to: url)
            case .directory(let path): try TokenizerFiles.copy(from: URL(fileURLWithPath: path), to: url)
            }
        } catch { throw ModelInitError.output("cannot write the tokenizer files into \(url.path): \(error)") }
        return Summary(directory: url, config: config, parameterCount: weights.count,
                       tokenizerVocabularySize: tokenizer.vocabularySize)
    }

    /// The fp32 weights plus one saved copy must fit in the memory available (`AvailableMemory`:
    /// MemAvailable and every cgroup limit from this process's cgroup up; `root` a fake `/` in tests).
    static func checkMemory(_ config: LlamaConfig, root: String = "") throws {
        let available = AvailableMemory.measured(root: root)
        try checkMemory(config, available: available?.bytes, source: available?.source)
    }

    /// The same against `available` bytes (nil: unknown, nothing refused); `source` names where the figure comes from.
    /// A huge --vocab-size is refused, not a SIGABRT.
    static func checkMemory(_ config: LlamaConfig, available: Int?, source: String? = nil) throws {
        let bytes = config.parameterCountIfRepresentable.flatMap { MemoryBudget.product([$0, 8]) }
        let what = "the weights of this model (vocab_size \(config.vocabSize), hidden_size \(config.hiddenSize), "
            + "\(config.numHiddenLayers) layers\(bytes == nil ? "" : ", \(config.parameterCountIfRepresentable!) parameters"))"
        do { try MemoryBudget.require(bytes: bytes, for: what, available: available, source: source) } catch {
            throw ModelInitError.invalidOption("\(error)")
        }
    }

    /// Refuses a path that is a file, or a non-empty directory unless `overwrite`.
    static func checkOutputDirectory(_ url: URL, overwrite: Bool) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else { return }
        guard isDirectory.boolValue else {
            throw ModelInitError.output("\(url.path) is a file, not a directory; choose another --out")
        }
        let contents = (try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? []
        if !contents.isEmpty && !overwrite {
            throw ModelInitError.output("\(url.path) is not empty (\(contents.count) entries); choose another --out or pass --force")
        }
    }
}

/// Why `dpo init` could not write a model directory.
public enum ModelInitError: Error, CustomStringConvertible, LocalizedError, Equatable {
    case invalidOption(String)
    case tokenizer(String)
    case output(String)

    public var description: String {
        switch self {
        case .invalidOption(let m): return "invalid option: \(m)"
        case .tokenizer(let m): return "tokenizer: \(m)"
        case .output(let m): return "output directory: \(m)"
        }
    }

    public var errorDescription: String? { description }
}
