import Foundation

// MARK: - BPE

/// BPE as Hugging Face `tokenizers` runs it: added tokens are matched first (leftmost-longest),
/// each stretch of text between them is normalised (NFC, NFKC, Replace, Prepend, Strip), split into
/// pre-tokens (Split regexes, Digits, Metaspace), spelled as symbols, and each pre-token is merged
/// by rank (lowest rank, leftmost first). The symbols are bytes of the byte-level alphabet when the
/// file has a ByteLevel pre-tokenizer, else characters, a character missing from the vocabulary
/// becoming its `<0xHH>` byte tokens (`byte_fallback`) or the unknown token. BPE results are cached
/// per pre-token.
public final class BPETokenizer: Tokenizer, @unchecked Sendable {
    public let vocabularySize: Int
    public let bosTokenId: Int32?
    public let eosTokenId: Int32?
    public let padTokenId: Int32?
    /// The model's chat template: `chat_template.jinja` beside `tokenizer.json` (set by `loadTokenizer`),
    /// else `tokenizer_config.json`'s `chat_template`, else `.none`.
    public internal(set) var chatTemplate: ChatTemplate
    /// The `chat_template` text of `tokenizer_config.json`, if any.
    public let chatTemplateSource: String?
    /// Where the tokenizer was read from.
    public let sourcePath: String

    private let definition: TokenizerDefinition
    /// Token string of each id (model vocabulary and added tokens), [vocabularySize].
    private let tokenOfId: [String?]
    private let specialIds: Set<Int32>
    /// Id of each single-byte token, [256]: the byte-level alphabet's character for byte-level
    /// files, the `<0xHH>` token for byte fallback.
    private let byteIds: [Int32?]
    /// Id of each vocabulary entry by its bytes (for `ignore_merges`).
    private let idOfBytes: [[UInt8]: Int32]
    /// (left id << 32 | right id) -> (rank, merged id).
    private let mergeTable: [UInt64: (rank: Int32, merged: Int32)]
    private let unknownId: Int32?
    private let addedTokenMatcher: AddedTokenMatcher
    private let cacheLock = NSLock()
    private var cache: [[UInt8]: [Int32]] = [:]
    private static let cacheCapacity = 200_000
    private static let longestCachedWord = 256

    /// Builds a tokenizer from the contents of `tokenizer.json` and, optionally, `tokenizer_config.json`
    /// and `special_tokens_map.json`; `sourcePath` names the file in errors.
    public init(tokenizerJSON: Data, tokenizerConfigJSON: Data?, specialTokensMapJSON: Data?, sourcePath: String) throws {
        let definition = try TokenizerDefinition(
            tokenizerJSON: tokenizerJSON, tokenizerConfigJSON: tokenizerConfigJSON,
            specialTokensMapJSON: specialTokensMapJSON, path: sourcePath)
        self.definition = definition
        self.sourcePath = sourcePath

        var largestId: Int32 = -1
        for id in definition.vocabulary.values { largestId = max(largestId, id) }
        for token in definition.addedTokens { largestId = max(largestId, token.id) }
        // The id table below has one slot per id up to the largest: a stray id such as 2147483646 would
        // make it 32 GB. Real vocabularies are contiguous from 0 (added tokens follow the model's).
        let definedCount = definition.vocabulary.count + definition.addedTokens.count
        guard Int(largestId) < 2 * definedCount + 1024 else {
            throw TokenizerError.malformed(
                path: sourcePath,
                problem: "token id \(largestId) is far beyond the \(definedCount) tokens defined; ids must run from 0 without large gaps")
        }
        vocabularySize = Int(largestId) + 1
        for id in definition.postProcessorPrefix + definition.postProcessorSuffix where Int(id) >= vocabularySize {
            throw TokenizerError.malformed(path: sourcePath, problem: "post_processor adds id \(id), outside the vocabulary 0..<\(vocabularySize)")
        }
        var tokenOfId = [String?](repeating: nil, count: vocabularySize)
        var idOfBytes = [[UInt8]: Int32]()
        for (token, id) in definition.vocabulary {
            tokenOfId[Int(id)] = token
            if let bytes = ByteLevelAlphabet.decode(token) { idOfBytes[bytes] = id }
        }
        for token in definition.addedTokens { tokenOfId[Int(token.id)] = token.content }
        self.tokenOfId = tokenOfId
        self.idOfBytes = idOfBytes
        specialIds = Set(definition.addedTokens.filter(\.special).map(\.id))
        byteIds = (0..<256).map { byte in
            definition.byteLevel ? definition.vocabulary[String(ByteLevelAlphabet.characterOfByte[byte])]
                : definition.vocabulary[String(format: "<0x%02X>", byte)]
        }

        var mergeTable = [UInt64: (rank: Int32, merged: Int32)]()
        mergeTable.reserveCapacity(definition.merges.count)
        for (rank, (left, right)) in definition.merges.enumerated() {
            guard let leftId = definition.vocabulary[left], let rightId = definition.vocabulary[right],
                  let mergedId = definition.vocabulary[left + right] else {
                throw TokenizerError.malformed(path: sourcePath, problem: "merge \(rank) '\(left) \(right)' uses a token missing from the vocabulary")
            }
            let key = UInt64(UInt32(leftId)) << 32 | UInt64(UInt32(rightId))
            if mergeTable[key] == nil { mergeTable[key] = (Int32(rank), mergedId) }
        }
        self.mergeTable = mergeTable
        unknownId = definition.unknownToken.flatMap { definition.vocabulary[$0] }
        addedTokenMatcher = AddedTokenMatcher(tokens: definition.addedTokens)

        func resolve(_ token: String?, _ name: String) throws -> Int32? {
            guard let token else { return nil }
            guard let id = definition.addedTokens.first(where: { $0.content == token })?.id ?? definition.vocabulary[token] else {
                throw TokenizerError.malformed(path: sourcePath, problem: "\(name) '\(token)' is not in the vocabulary")
            }
            return id
        }
        bosTokenId = try resolve(definition.bosToken, "bos_token")
        eosTokenId = try resolve(definition.eosToken, "eos_token")
        padTokenId = try resolve(definition.padToken, "pad_token")
        chatTemplateSource = definition.chatTemplateSource
        chatTemplate = ChatTemplate.fromTokenizerConfig(definition.chatTemplateSource, tokenizerPath: sourcePath)
    }

    // MARK: - Encoding

    public func encode(_ text: String, addSpecialTokens: Bool, parseSpecialTokens: Bool) -> [Int32] {
        var ids = [Int32]()
        if addSpecialTokens { ids += definition.postProcessorPrefix }
        for (index, segment) in addedTokenMatcher.split(text, includeSpecial: parseSpecialTokens).enumerated() {
            switch segment {
            case .added(let id): ids.append(id)
            case .text(let substring): encodeOrdinaryText(String(substring), atStart: index == 0, into: &ids)
            }
        }
        if addSpecialTokens { ids += definition.postProcessorSuffix }
        return ids
    }

    /// Normalises, pre-tokenises and BPE-encodes text that holds no added token (`atStart`: it
    /// begins the input, for Metaspace's "first" prepend scheme).
    private func encodeOrdinaryText(_ original: String, atStart: Bool, into ids: inout [Int32]) {
        var text = original
        for step in definition.normalizers { text = step.apply(text) }
        if let metaspace = definition.metaspace { text = metaspace.apply(text, atStart: atStart) }
        if text.isEmpty { return }
        if definition.addPrefixSpace && !text.hasPrefix(" ") { text = " " + text }
        let scalars = Array(text.unicodeScalars)
        let bytes = Array(text.utf8)
        // Byte offset of each scalar, [scalars.count + 1].
        var byteOffset = [Int](repeating: 0, count: scalars.count + 1)
        var offset = 0
        for (index, scalar) in scalars.enumerated() {
            byteOffset[index] = offset
            offset += UTF8.width(scalar)
        }
        byteOffset[scalars.count] = offset

        // Pieces as scalar ranges, refined by each split stage.
        var pieces: [Range<Int>] = [0..<scalars.count]
        for case .split(let pattern) in definition.preTokenizerStages {
            var refined = [Range<Int>]()
            for piece in pieces {
                let pieceScalars = Array(scalars[piece])
                let classes = pieceScalars.map(ScalarClass.of)
                var start = piece.lowerBound
                for end in pattern.pieceEnds(pieceScalars, classes) {
                    refined.append(start..<(piece.lowerBound + end))
                    start = piece.lowerBound + end
                }
            }
            pieces = refined
        }
        cacheLock.lock()
        defer { cacheLock.unlock() }
        for piece in pieces where !piece.isEmpty {
            let wordBytes = bytes[byteOffset[piece.lowerBound]..<byteOffset[piece.upperBound]]
            if mergeTable.isEmpty && !definition.ignoreMerges && definition.byteLevel {
                for byte in wordBytes {
                    if let id = byteIds[Int(byte)] { ids.append(id) } else if let unknownId { ids.append(unknownId) }
                }
                continue
            }
            let word = Array(wordBytes)
            if word.count > Self.longestCachedWord {
                ids += mergeWord(word)
                continue
            }
            if let cached = cache[word] {
                ids += cached
                continue
            }
            let result = mergeWord(word)
            if cache.count >= Self.cacheCapacity { cache.removeAll(keepingCapacity: true) }
            cache[word] = result
            ids += result
        }
    }

    /// BPE of one pre-token's bytes: start from single bytes, merge the lowest-ranked adjacent pair
    /// (leftmost on ties) until no pair has a merge.
    private func mergeWord(_ word: [UInt8]) -> [Int32] {
        var symbols: [Int32]
        if definition.byteLevel {
            if definition.ignoreMerges, let whole = idOfBytes[word] { return [whole] }
            symbols = []
            symbols.reserveCapacity(word.count)
            for byte in word {
                if let id = byteIds[Int(byte)] { symbols.append(id) } else if let unknownId { symbols.append(unknownId) }
            }
        } else {
            let text = String(decoding: word, as: UTF8.self)
            if definition.ignoreMerges, let whole = definition.vocabulary[text] { return [whole] }
            symbols = characterSymbols(text)
        }
        while symbols.count > 1 {
            var bestRank = Int32.max
            var bestPosition = -1
            var bestMerged: Int32 = 0
            for position in 0..<(symbols.count - 1) {
                let key = UInt64(UInt32(symbols[position])) << 32 | UInt64(UInt32(symbols[position + 1]))
                if let merge = mergeTable[key], merge.rank < bestRank {
                    bestRank = merge.rank
                    bestPosition = position
                    bestMerged = merge.merged
                }
            }
            if bestPosition < 0 { break }
            symbols[bestPosition] = bestMerged
            symbols.remove(at: bestPosition + 1)
        }
        return symbols
    }

    /// The initial symbols of a character-level (sentencepiece-style) word: each character's id,
    /// else its UTF-8 bytes as `<0xHH>` ids (byte fallback, when every one exists), else the
    /// unknown id, consecutive unknowns fused into one when the file says `fuse_unk`.
    private func characterSymbols(_ text: String) -> [Int32] {
        var symbols = [Int32]()
        var previousUnknown = false
        for scalar in text.unicodeScalars {
            if let id = definition.vocabulary[String(scalar)] {
                symbols.append(id)
                previousUnknown = false
                continue
            }
            if definition.byteFallback {
                let fallback = Array(String(scalar).utf8).map { byteIds[Int($0)] }
                if fallback.allSatisfy({ $0 != nil }) {
                    symbols += fallback.map { $0! }
                    previousUnknown = false
                    continue
                }
            }
            guard let unknownId else { continue }
            if !(definition.fuseUnknown && previousUnknown) { symbols.append(unknownId) }
            previousUnknown = true
        }
        return symbols
    }

    // MARK: - Decoding and lookup

    public func decode(_ ids: [Int32], skipSpecialTokens: Bool) -> String {
        var tokens = [String]()
        for id in ids {
            guard id >= 0, Int(id) < tokenOfId.count, let token = tokenOfId[Int(id)] else { continue }
            if skipSpecialTokens && specialIds.contains(id) { continue }
            tokens.append(token)
        }
        return DecoderStep.decode(tokens, steps: definition.decoders)
    }

    public func tokenToId(_ token: String) -> Int32? {
        if let added = definition.addedTokens.first(where: { $0.content == token }) { return added.id }
        return definition.vocabulary[token]
    }

    public func idToToken(_ id: Int32) -> String? {
        guard id >= 0, Int(id) < tokenOfId.count else { return nil }
        return tokenOfId[Int(id)]
    }

    public func isSpecialToken(_ id: Int32) -> Bool { specialIds.contains(id) }
}
