import Foundation

/// One step of a `tokenizer.json` decoder. Steps run in order over the list of token strings
/// (Hugging Face's `decode_chain`), and the final list is concatenated.
enum DecoderStep: Equatable {
    /// Byte-level alphabet characters back to bytes, the whole list to one string.
    case byteLevel
    /// Every occurrence of a literal string replaced in each token ("▁" -> " ").
    case replace(pattern: String, content: String)
    /// Runs of `<0xHH>` tokens to the text of their bytes (U+FFFD per byte if not valid UTF-8).
    case byteFallback
    /// The list joined into one token.
    case fuse
    /// Up to `start` leading and `stop` trailing `content` characters removed from each token.
    case strip(content: Character, start: Int, stop: Int)
    /// `Metaspace` decoding: the replacement becomes a space, except in the first token, where
    /// it is dropped unless the prepend scheme is "never".
    case metaspace(MetaspaceOptions)

    /// Runs `steps` over `tokens`; with no steps the tokens are joined by spaces, as `tokenizers` does.
    static func decode(_ tokens: [String], steps: [DecoderStep]) -> String {
        guard !steps.isEmpty else { return tokens.joined(separator: " ") }
        var list = tokens
        for step in steps { list = step.apply(list) }
        return list.joined()
    }

    func apply(_ tokens: [String]) -> [String] {
        switch self {
        case .byteLevel:
            var bytes = [UInt8]()
            for token in tokens {
                if let tokenBytes = ByteLevelAlphabet.decode(token) { bytes += tokenBytes } else { bytes += Array(token.utf8) }
            }
            return [String(decoding: bytes, as: UTF8.self)]
        case .replace(let pattern, let content):
            return tokens.map { $0.replacingOccurrences(of: pattern, with: content, options: .literal) }
        case .byteFallback:
            return Self.fallbackBytes(tokens)
        case .fuse:
            return [tokens.joined()]
        case .strip(let content, let start, let stop):
            return tokens.map { token in
                var characters = Array(token)
                var cut = 0
                while cut < min(start, characters.count) && characters[cut] == content { cut += 1 }
                characters.removeFirst(cut)
                var tail = 0
                while tail < min(stop, characters.count) && characters[characters.count - 1 - tail] == content { tail += 1 }
                characters.removeLast(tail)
                return String(characters)
            }
        case .metaspace(let options):
            let replacement = Character(options.replacement)
            return tokens.enumerated().map { index, token in
                var out = ""
                for character in token {
                    if character == replacement {
                        if index == 0 && options.prependScheme != .never { continue }
                        out.append(" ")
                    } else {
                        out.append(character)
                    }
                }
                return out
            }
        }
    }

    /// The byte of a `<0xHH>` token, if it is one.
    static func fallbackByte(_ token: String) -> UInt8? {
        let utf8 = Array(token.utf8)
        guard utf8.count == 6, token.hasPrefix("<0x"), token.hasSuffix(">") else { return nil }
        return UInt8(String(decoding: utf8[3..<5], as: UTF8.self), radix: 16)
    }

    private static func fallbackBytes(_ tokens: [String]) -> [String] {
        var result = [String]()
        var pending = [UInt8]()
        func flush() {
            guard !pending.isEmpty else { return }
            // Valid UTF-8 iff it survives the round trip (Foundation's String(bytes:encoding:) would drop a BOM).
            let text = String(decoding: pending, as: UTF8.self)
            if Array(text.utf8) == pending {
                result.append(text)
            } else {
                result += Array(repeating: "\u{FFFD}", count: pending.count)
            }
            pending.removeAll()
        }
        for token in tokens {
            if let byte = fallbackByte(token) {
                pending.append(byte)
            } else {
                flush()
                result.append(token)
            }
        }
        flush()
        return result
    }
}
