import Foundation

// MARK: - What a tokenizer.json says, checked

/// The parts of a Hugging Face `tokenizer.json` (plus `tokenizer_config.json`) that BPE uses, read and
/// checked: byte-level BPE (GPT-2, Llama-3, Qwen, SmolLM2 files) and sentencepiece-style BPE over
/// characters with byte fallback (Llama-2, TinyLlama, Mistral files). Anything outside the supported
/// subset is refused by name with `TokenizerError.unsupported`.
struct TokenizerDefinition {
    /// One entry of `added_tokens`.
    struct AddedToken {
        var id: Int32
        var content: String
        var special: Bool
        var singleWord: Bool
        var leftStrip: Bool
        var rightStrip: Bool
    }

    /// One splitting step of the pre-tokenizer.
    enum PreTokenizerStage {
        case split(PreTokenizationPattern)
    }

    var vocabulary: [String: Int32] = [:]
    /// (left, right) token strings in priority order.
    var merges: [(String, String)] = []
    var unknownToken: String?
    var ignoreMerges = false
    /// Characters missing from the vocabulary become their UTF-8 bytes as `<0xHH>` tokens.
    var byteFallback = false
    /// Consecutive unknown characters become one unknown token.
    var fuseUnknown = false
    var addedTokens: [AddedToken] = []
    var normalizers: [NormalizerStep] = []
    var addPrefixSpace = false
    var preTokenizerStages: [PreTokenizerStage] = []
    /// A `ByteLevel` pre-tokenizer is present: the model's symbols are the byte-level alphabet.
    /// Without one, BPE works on the characters themselves (sentencepiece-style files).
    var byteLevel = false
    var metaspace: MetaspaceOptions?
    var decoders: [DecoderStep] = []
    /// Ids the post-processor puts before and after a single sequence.
    var postProcessorPrefix: [Int32] = []
    var postProcessorSuffix: [Int32] = []
    var bosToken: String?
    var eosToken: String?
    var padToken: String?
    var chatTemplateSource: String?

    // MARK: - Parsing

    init(tokenizerJSON: Data, tokenizerConfigJSON: Data?, specialTokensMapJSON: Data?, path: String) throws {
        guard let root = try? JSONSerialization.jsonObject(with: tokenizerJSON) as? [String: Any] else {
            throw TokenizerError.malformed(path: path, problem: "not a JSON object")
        }
        try parseModel(root["model"], path: path)
        try parseAddedTokens(root["added_tokens"], path: path)
        try parseNormalizer(root["normalizer"], path: path)
        if let preTokenizer = root["pre_tokenizer"], !(preTokenizer is NSNull) {
            try parsePreTokenizer(preTokenizer, path: path, isFirst: true)
        }
        try parseDecoder(root["decoder"], path: path)
        if let processor = root["post_processor"], !(processor is NSNull) {
            try parsePostProcessor(processor, path: path)
        }
        if let truncation = root["truncation"], !(truncation is NSNull) {
            throw TokenizerError.unsupported(path: path, component: "truncation", what: "set in tokenizer.json")
        }
        if let padding = root["padding"], !(padding is NSNull) {
            throw TokenizerError.unsupported(path: path, component: "padding", what: "set in tokenizer.json")
        }
        for data in [specialTokensMapJSON, tokenizerConfigJSON].compactMap({ $0 }) {
            guard let config = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw TokenizerError.malformed(path: path, problem: "tokenizer_config.json or special_tokens_map.json is not a JSON object")
            }
            if let value = Self.tokenString(config["bos_token"]) { bosToken = value }
            if let value = Self.tokenString(config["eos_token"]) { eosToken = value }
            if let value = Self.tokenString(config["pad_token"]) { padToken = value }
            if let template = config["chat_template"] as? String {
                chatTemplateSource = template
            } else if let templates = config["chat_template"] as? [[String: Any]] {
                let chosen = templates.first { ($0["name"] as? String) == "default" } ?? templates.first
                chatTemplateSource = chosen?["template"] as? String
            }
        }
    }

    /// `value` as a token id (0 ..< Int32.max), or nil.
    static func tokenId(_ value: Int) -> Int32? {
        value >= 0 && value < Int(Int32.max) ? Int32(value) : nil
    }

    private static func tokenString(_ value: Any?) -> String? {
        if let text = value as? String { return text }
        if let object = value as? [String: Any] { return object["content"] as? String }
        return nil
    }

    private mutating func parseModel(_ value: Any?, path: String) throws {
        guard let model = value as? [String: Any] else {
            throw TokenizerError.malformed(path: path, problem: "no 'model' object")
        }
        let type = model["type"] as? String ?? "BPE"
        guard type == "BPE" else { throw TokenizerError.unsupported(path: path, component: "model", what: type) }
        for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if let prefix = model[key] as? String, !prefix.isEmpty {
                throw TokenizerError.unsupported(path: path, component: "BPE option", what: "\(key)=\(prefix)")
            }
        }
        if let dropout = model["dropout"] as? Double, dropout > 0 {
            throw TokenizerError.unsupported(path: path, component: "BPE option", what: "dropout=\(dropout)")
        }
        byteFallback = model["byte_fallback"] as? Bool ?? false
        fuseUnknown = model["fuse_unk"] as? Bool ?? false
        ignoreMerges = model["ignore_merges"] as? Bool ?? false
        unknownToken = model["unk_token"] as? String
        guard let vocab = model["vocab"] as? [String: Any] else {
            throw TokenizerError.malformed(path: path, problem: "model.vocab is not an object")
        }
        vocabulary.reserveCapacity(vocab.count)
        for (token, id) in vocab {
            guard let number = id as? Int, number >= 0, number < Int(Int32.max) else {
                throw TokenizerError.malformed(path: path, problem: "model.vocab['\(token)'] is not a token id")
            }
            vocabulary[token] = Int32(number)
        }
        let rawMerges = model["merges"] as? [Any] ?? []
        merges.reserveCapacity(rawMerges.count)
        for (index, merge) in rawMerges.enumerated() {
            if let text = merge as? String {
                let parts = text.split(separator: " ", omittingEmptySubsequences: false)
                guard parts.count == 2 else {
                    throw TokenizerError.malformed(path: path, problem: "merge \(index) '\(text)' is not two tokens separated by one space")
                }
                merges.append((String(parts[0]), String(parts[1])))
            } else if let pair = merge as? [String], pair.count == 2 {
                merges.append((pair[0], pair[1]))
            } else {
                throw TokenizerError.malformed(path: path, problem: "merge \(index) is neither \"a b\" nor [\"a\", \"b\"]")
            }
        }
    }

    private mutating func parseAddedTokens(_ value: Any?, path: String) throws {
        guard let list = value as? [[String: Any]] else { return }
        for entry in list {
            guard let id = entry["id"] as? Int, let content = entry["content"] as? String, !content.isEmpty else {
                throw TokenizerError.malformed(path: path, problem: "an added_tokens entry lacks id or content")
            }
            // Checked before the narrowing to Int32 (which traps, or in -Ounchecked wraps) and before
            // the id is used as an index.
            guard let tokenId = Self.tokenId(id) else {
                throw TokenizerError.malformed(path: path, problem: "added_tokens entry '\(content)' has id \(id), not a token id")
            }
            addedTokens.append(AddedToken(
                id: tokenId, content: content, special: entry["special"] as? Bool ?? false,
                singleWord: entry["single_word"] as? Bool ?? false, leftStrip: entry["lstrip"] as? Bool ?? false,
                rightStrip: entry["rstrip"] as? Bool ?? false))
        }
    }

    private mutating func parseNormalizer(_ value: Any?, path: String) throws {
        guard let value, !(value is NSNull) else { return }
        guard let normalizer = value as? [String: Any], let type = normalizer["type"] as? String else {
            throw TokenizerError.malformed(path: path, problem: "normalizer has no type")
        }
        switch type {
        case "NFC": normalizers.append(.nfc)
        case "NFKC": normalizers.append(.nfkc)
        case "Replace":
            normalizers.append(try Self.replacement(normalizer, component: "normalizer", path: path))
        case "Prepend":
            guard let prefix = normalizer["prepend"] as? String else {
                throw TokenizerError.malformed(path: path, problem: "Prepend normalizer has no 'prepend' string")
            }
            normalizers.append(.prepend(prefix))
        case "Strip":
            normalizers.append(.strip(left: normalizer["strip_left"] as? Bool ?? true, right: normalizer["strip_right"] as? Bool ?? true))
        case "Sequence":
            for member in normalizer["normalizers"] as? [Any] ?? [] { try parseNormalizer(member, path: path) }
        default: throw TokenizerError.unsupported(path: path, component: "normalizer", what: type)
        }
    }

    /// A `Replace` normalizer or decoder with a literal `String` pattern (a `Regex` one is refused).
    private static func replacement(_ object: [String: Any], component: String, path: String) throws -> NormalizerStep {
        let pattern = object["pattern"] as? [String: Any] ?? [:]
        guard let literal = pattern["String"] as? String, !literal.isEmpty, let content = object["content"] as? String else {
            let what = (pattern["Regex"] as? String).map { "Replace with Regex \($0)" } ?? "Replace without a String pattern"
            throw TokenizerError.unsupported(path: path, component: component, what: what)
        }
        return .replace(pattern: literal, content: content)
    }

    private mutating func parsePreTokenizer(_ value: Any, path: String, isFirst: Bool) throws {
        guard let preTokenizer = value as? [String: Any], let type = preTokenizer["type"] as? String else {
            throw TokenizerError.malformed(path: path, problem: "pre_tokenizer has no type")
        }
        switch type {
        case "Sequence":
            let members = preTokenizer["pretokenizers"] as? [Any] ?? []
            for (index, member) in members.enumerated() {
                try parsePreTokenizer(member, path: path, isFirst: isFirst && index == 0)
            }
        case "Digits":
            preTokenizerStages.append(.split(.digits(individual: preTokenizer["individual_digits"] as? Bool ?? false)))
        case "Metaspace":
            guard isFirst, !byteLevel else {
                throw TokenizerError.unsupported(path: path, component: "pre_tokenizer", what: "Metaspace after another pre-tokenizer")
            }
            let options = try Self.metaspace(preTokenizer, path: path)
            metaspace = options
            if options.split { preTokenizerStages.append(.split(.beforeEach(options.replacement))) }
        case "ByteLevel":
            guard metaspace == nil else {
                throw TokenizerError.unsupported(path: path, component: "pre_tokenizer", what: "ByteLevel after Metaspace")
            }
            byteLevel = true
            if preTokenizer["add_prefix_space"] as? Bool ?? false {
                guard isFirst else {
                    throw TokenizerError.unsupported(path: path, component: "pre_tokenizer",
                                                     what: "ByteLevel with add_prefix_space after another pre-tokenizer")
                }
                addPrefixSpace = true
            }
            if preTokenizer["use_regex"] as? Bool ?? true { preTokenizerStages.append(.split(.gpt2)) }
        case "Split":
            let behavior = preTokenizer["behavior"] as? String ?? "Isolated"
            guard behavior == "Isolated" else {
                throw TokenizerError.unsupported(path: path, component: "Split behavior", what: behavior)
            }
            if preTokenizer["invert"] as? Bool ?? false {
                throw TokenizerError.unsupported(path: path, component: "Split option", what: "invert=true")
            }
            let pattern = preTokenizer["pattern"] as? [String: Any] ?? [:]
            if let regex = pattern["Regex"] as? String {
                do { preTokenizerStages.append(.split(try PreTokenizationPattern.from(regex: regex))) } catch {
                    throw TokenizerError.unsupported(path: path, component: "Split regex", what: regex)
                }
            } else if let literal = pattern["String"] as? String {
                let escaped = NSRegularExpression.escapedPattern(for: literal)
                preTokenizerStages.append(.split(.other(try NSRegularExpression(pattern: escaped))))
            } else {
                throw TokenizerError.malformed(path: path, problem: "Split pre-tokenizer has no Regex or String pattern")
            }
        default:
            throw TokenizerError.unsupported(path: path, component: "pre_tokenizer", what: type)
        }
    }

    /// Metaspace options; files of tokenizers < 0.14 say `add_prefix_space` instead of `prepend_scheme`.
    private static func metaspace(_ object: [String: Any], path: String) throws -> MetaspaceOptions {
        let text = object["replacement"] as? String ?? "\u{2581}"
        guard text.unicodeScalars.count == 1, let replacement = text.unicodeScalars.first else {
            throw TokenizerError.unsupported(path: path, component: "Metaspace replacement", what: text)
        }
        let schemeName = object["prepend_scheme"] as? String ?? ((object["add_prefix_space"] as? Bool ?? true) ? "always" : "never")
        guard let scheme = MetaspaceOptions.PrependScheme(rawValue: schemeName) else {
            throw TokenizerError.unsupported(path: path, component: "Metaspace prepend_scheme", what: schemeName)
        }
        return MetaspaceOptions(replacement: replacement, prependScheme: scheme, split: object["split"] as? Bool ?? true)
    }

    private mutating func parseDecoder(_ value: Any?, path: String) throws {
        guard let value, !(value is NSNull) else { return }
        guard let decoder = value as? [String: Any], let type = decoder["type"] as? String else {
            throw TokenizerError.malformed(path: path, problem: "decoder has no type")
        }
        switch type {
        case "ByteLevel": decoders.append(.byteLevel)
        case "ByteFallback": decoders.append(.byteFallback)
        case "Fuse": decoders.append(.fuse)
        case "Replace":
            guard case let .replace(pattern, content) = try Self.replacement(decoder, component: "decoder", path: path) else { return }
            decoders.append(.replace(pattern: pattern, content: content))
        case "Strip":
            let content = decoder["content"] as? String ?? " "
            guard content.count == 1, let character = content.first else {
                throw TokenizerError.unsupported(path: path, component: "Strip decoder content", what: content)
            }
            decoders.append(.strip(content: character, start: decoder["start"] as? Int ?? 0, stop: decoder["stop"] as? Int ?? 0))
        case "Metaspace": decoders.append(.metaspace(try Self.metaspace(decoder, path: path)))
        case "Sequence":
            for member in decoder["decoders"] as? [Any] ?? [] { try parseDecoder(member, path: path) }
        default: throw TokenizerError.unsupported(path: path, component: "decoder", what: type)
        }
    }

    private mutating func parsePostProcessor(_ value: Any, path: String) throws {
        guard let processor = value as? [String: Any], let type = processor["type"] as? String else {
            throw TokenizerError.malformed(path: path, problem: "post_processor has no type")
        }
        switch type {
        case "ByteLevel": break  // only adjusts offsets
        case "Sequence":
            for member in processor["processors"] as? [Any] ?? [] { try parsePostProcessor(member, path: path) }
        case "TemplateProcessing":
            let specialTokens = processor["special_tokens"] as? [String: [String: Any]] ?? [:]
            var seenSequence = false
            for item in processor["single"] as? [[String: Any]] ?? [] {
                if let special = item["SpecialToken"] as? [String: Any], let name = special["id"] as? String {
                    guard let list = specialTokens[name]?["ids"] as? [Int] else {
                        throw TokenizerError.malformed(path: path, problem: "TemplateProcessing names '\(name)' without ids")
                    }
                    let ids = list.compactMap(Self.tokenId)
                    guard ids.count == list.count else {
                        throw TokenizerError.malformed(path: path, problem: "TemplateProcessing '\(name)' has ids \(list), not token ids")
                    }
                    if seenSequence { postProcessorSuffix += ids } else { postProcessorPrefix += ids }
                } else if item["Sequence"] != nil {
                    seenSequence = true
                }
            }
        case "RobertaProcessing", "BertProcessing":
            guard let cls = processor["cls"] as? [Any], let sep = processor["sep"] as? [Any],
                  let clsId = (cls.last as? Int).flatMap(Self.tokenId), let sepId = (sep.last as? Int).flatMap(Self.tokenId) else {
                throw TokenizerError.malformed(path: path, problem: "\(type) lacks cls/sep token ids")
            }
            postProcessorPrefix.append(clsId)
            postProcessorSuffix.append(sepId)
        default:
            throw TokenizerError.unsupported(path: path, component: "post_processor", what: type)
        }
    }
}
