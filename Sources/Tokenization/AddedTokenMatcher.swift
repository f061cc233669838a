// MARK: - Added tokens before BPE

/// Finds added tokens (`<|im_end|>`, ...) in text before anything else runs, leftmost-longest,
/// as Hugging Face's `AddedVocabulary` does, honouring `lstrip`, `rstrip` and `single_word`.
struct AddedTokenMatcher {
    enum Segment {
        case added(Int32)
        case text(Substring)
    }

    private struct Candidate {
        var bytes: [UInt8]
        var token: TokenizerDefinition.AddedToken
    }

    /// Candidates by their first byte, longest first.
    private let candidatesByFirstByte: [[Candidate]]

    init(tokens: [TokenizerDefinition.AddedToken]) {
        var table = [[Candidate]](repeating: [], count: 256)
        for token in tokens {
            let bytes = Array(token.content.utf8)
            table[Int(bytes[0])].append(Candidate(bytes: bytes, token: token))
        }
        candidatesByFirstByte = table.map { $0.sorted { $0.bytes.count > $1.bytes.count } }
    }

    /// Splits `text` into added-token ids and the ordinary text between them.
    /// `includeSpecial` false leaves special tokens as ordinary text (non-special added tokens still match).
    func split(_ text: String, includeSpecial: Bool) -> [Segment] {
        let bytes = Array(text.utf8)
        var segments = [Segment]()
        var textStart = 0
        var position = 0
        func isSpace(_ b: UInt8) -> Bool { b == 0x20 || (b >= 0x09 && b <= 0x0D) }
        func isWord(_ b: UInt8) -> Bool {
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x5F || b >= 0x80
        }
        while position < bytes.count {
            var matched: Candidate?
            for candidate in candidatesByFirstByte[Int(bytes[position])] {
                if !includeSpecial && candidate.token.special { continue }
                let end = position + candidate.bytes.count
                guard end <= bytes.count, bytes[position..<end].elementsEqual(candidate.bytes) else { continue }
                if candidate.token.singleWord {
                    if position > 0 && isWord(bytes[position - 1]) { continue }
                    if end < bytes.count && isWord(bytes[end]) { continue }
                }
                matched = candidate
                break
            }
            guard let match = matched else {
                position += 1
                continue
            }
            var start = position
            var end = position + match.bytes.count
            if match.token.leftStrip { while start > textStart && isSpace(bytes[start - 1]) { start -= 1 } }
            if match.token.rightStrip { while end < bytes.count && isSpace(bytes[end]) { end += 1 } }
            if start > textStart { segments.append(.text(substring(text, bytes, textStart..<start))) }
            segments.append(.added(match.token.id))
            position = end
            textStart = end
        }
        if textStart < bytes.count { segments.append(.text(substring(text, bytes, textStart..<bytes.count))) }
        return segments
    }

    /// The substring of `text` at a UTF-8 byte range that starts and ends on scalar boundaries.
    private func substring(_ text: String, _ bytes: [UInt8], _ range: Range<Int>) -> Substring {
        let utf8 = text.utf8
        let start = utf8.index(utf8.startIndex, offsetBy: range.lowerBound)
        let end = utf8.index(start, offsetBy: range.count)
        return text[start..<end]
    }
}
