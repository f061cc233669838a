import Foundation

/// One step of a `tokenizer.json` normalizer, applied in order to each stretch of text between
/// added tokens (as Hugging Face `tokenizers` does).
enum NormalizerStep: Equatable {
    /// Unicode canonical composition.
    case nfc
    /// Unicode compatibility composition (ﬁ -> fi, ｆ -> f, ① -> 1).
    case nfkc
    /// Every occurrence of a literal string replaced (sentencepiece files: " " -> "▁").
    case replace(pattern: String, content: String)
    /// `prepend` put before non-empty text (sentencepiece files: "▁").
    case prepend(String)
    /// Leading and/or trailing whitespace removed.
    case strip(left: Bool, right: Bool)

    func apply(_ text: String) -> String {
        switch self {
        case .nfc:
            // Every scalar below U+0300 has NFC_Quick_Check=Yes, so such text is already NFC.
            return text.unicodeScalars.contains { $0.value >= 0x300 } ? text.precomposedStringWithCanonicalMapping : text
        case .nfkc:
            return text.unicodeScalars.contains { $0.value >= 0xA0 } ? text.precomposedStringWithCompatibilityMapping : text
        case .replace(let pattern, let content):
            return text.replacingOccurrences(of: pattern, with: content, options: .literal)
        case .prepend(let prefix):
            return text.isEmpty ? text : prefix + text
        case .strip(let left, let right):
            var scalars = Substring(text).unicodeScalars[...]
            if left { while let first = scalars.first, first.properties.isWhitespace { scalars.removeFirst() } }
            if right { while let last = scalars.last, last.properties.isWhitespace { scalars.removeLast() } }
            return String(String.UnicodeScalarView(scalars))
        }
    }
}

/// The `Metaspace` pre-tokenizer: spaces become `replacement` ("▁") and, by `prependScheme`, one
/// is put in front; with `split`, a piece starts at every replacement (`PreTokenizationPattern.beforeEach`).
struct MetaspaceOptions: Equatable {
    enum PrependScheme: String { case always, first, never }
    var replacement: Unicode.Scalar
    var prependScheme: PrependScheme
    var split: Bool

    /// `text` (one stretch between added tokens; `atStart` when it begins the input) as the model sees it.
    func apply(_ text: String, atStart: Bool) -> String {
        var result = text.replacingOccurrences(of: " ", with: String(Character(replacement)), options: .literal)
        let prepend = prependScheme == .always || (prependScheme == .first && atStart)
        if prepend && !result.unicodeScalars.starts(with: [replacement]) { result = String(Character(replacement)) + result }
        return result
    }
}
