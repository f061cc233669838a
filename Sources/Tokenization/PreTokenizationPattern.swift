import Foundation

// MARK: - Splitting text into pre-tokens

/// A pre-tokenization regex, implemented as a hand-written scanner for the patterns real byte-level
/// tokenizers use (so results match Hugging Face's Oniguruma regexes exactly and fast), or through
/// `NSRegularExpression` for any other pattern.
///
/// All patterns work on Unicode scalars: `\s` is the White_Space property, `\p{L}` the letter
/// categories (Lu Ll Lt Lm Lo), `\p{N}` the number categories (Nd Nl No).
public enum PreTokenizationPattern: Sendable {
    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
    case gpt2
    /// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,k}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    /// with k = 3 (Llama-3) or k = 1 (Qwen2, written `\p{N}`).
    case llama3(maxDigits: Int)
    /// Any other regex (Isolated behaviour: matches and the gaps between them are both pieces).
    case other(NSRegularExpression)
    /// The `Digits` pre-tokenizer: runs of numbers (`\p{N}`, as Rust's `char::is_numeric`) isolated
    /// from the rest, each digit alone when `individual`.
    case digits(individual: Bool)
    /// The splitting of a `Metaspace` pre-tokenizer with `split: true`: a new piece before every
    /// `replacement` (MergedWithNext), so each piece but the first starts with it.
    case beforeEach(Unicode.Scalar)

    static let gpt2Source = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
    static let llama3Source = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let qwen2Source = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    /// The pattern for a regex source string from `tokenizer.json`.
    public static func from(regex source: String) throws -> PreTokenizationPattern {
        switch source {
        case gpt2Source: return .gpt2
        case llama3Source: return .llama3(maxDigits: 3)
        case qwen2Source: return .llama3(maxDigits: 1)
        default:
            let llama3Prefix = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,"#
            let llama3Suffix = #"}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
            if source.hasPrefix(llama3Prefix), source.hasSuffix(llama3Suffix) {
                let digits = source.dropFirst(llama3Prefix.count).dropLast(llama3Suffix.count)
                if let k = Int(digits), k >= 1 { return .llama3(maxDigits: k) }
            }
            return .other(try NSRegularExpression(pattern: source, options: []))
        }
    }

    /// Splits `scalars` (with `classes` from `ScalarClass.of`) into consecutive pieces; returns the end
    /// scalar index of each piece (pieces cover the text without gaps).
    func pieceEnds(_ scalars: [Unicode.Scalar], _ classes: [UInt8]) -> [Int] {
        var ends = [Int]()
        var position = 0
        let count = scalars.count
        switch self {
        case .gpt2:
            while position < count {
                position = Self.gpt2Match(scalars, classes, position)
                ends.append(position)
            }
        case .llama3(let maxDigits):
            while position < count {
                position = Self.llama3Match(scalars, classes, position, maxDigits)
                ends.append(position)
            }
        case .digits(let individual):
            while position < count {
                let isNumber = classes[position] & ScalarClass.number != 0
                var end = position + 1
                if !(isNumber && individual) {
                    while end < count && (classes[end] & ScalarClass.number != 0) == isNumber { end += 1 }
                }
                ends.append(end)
                position = end
            }
        case .beforeEach(let marker):
            for index in 1..<max(count, 1) where scalars[index] == marker { ends.append(index) }
            if count > 0 { ends.append(count) }
        case .other(let regex):
            var text = String.UnicodeScalarView()
            text.append(contentsOf: scalars)
            let string = String(text)
            let utf16Count = string.utf16.count
            // Map UTF-16 offsets back to scalar indices.
            var scalarIndexOfUTF16 = [Int](repeating: 0, count: utf16Count + 1)
            var utf16Offset = 0
            for (index, scalar) in scalars.enumerated() {
                scalarIndexOfUTF16[utf16Offset] = index
                utf16Offset += scalar.utf16.count
            }
            scalarIndexOfUTF16[utf16Count] = scalars.count
            for match in regex.matches(in: string, range: NSRange(location: 0, length: utf16Count)) {
                let start = scalarIndexOfUTF16[match.range.location]
                let end = scalarIndexOfUTF16[match.range.location + match.range.length]
                if start > position { ends.append(start) }
                if end > start { ends.append(end) }
                position = end
            }
            if position < count { ends.append(count) }
        }
        return ends
    }

    // MARK: - GPT-2 scanner

    private static func gpt2Match(_ s: [Unicode.Scalar], _ c: [UInt8], _ i: Int) -> Int {
        let n = s.count
        if s[i] == "'" && i + 1 < n {
            let a = s[i + 1]
            if a == "s" || a == "t" || a == "m" || a == "d" { return i + 2 }
            if i + 2 < n {
                let b = s[i + 2]
                if (a == "r" && b == "e") || (a == "v" && b == "e") || (a == "l" && b == "l") { return i + 3 }
            }
        }
        // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`
        let start = (s[i] == " " && i + 1 < n && c[i + 1] & ScalarClass.whitespace == 0) ? i + 1 : i
        let kind = c[start] & (ScalarClass.letter | ScalarClass.number | ScalarClass.whitespace)
        if kind != ScalarClass.whitespace {
            var j = start + 1
            while j < n && c[j] & (ScalarClass.letter | ScalarClass.number | ScalarClass.whitespace) == kind { j += 1 }
            return j
        }
        return whitespaceTail(c, i)
    }

    // MARK: - Llama-3 / Qwen2 scanner

    private static func llama3Match(_ s: [Unicode.Scalar], _ c: [UInt8], _ i: Int, _ maxDigits: Int) -> Int {
        let n = s.count
        if s[i] == "'" && i + 1 < n {
            let a = lowercased(s[i + 1])
            if a == "s" || a == "t" || a == "m" || a == "d" { return i + 2 }
            if i + 2 < n {
                let b = lowercased(s[i + 2])
                if (a == "r" && b == "e") || (a == "v" && b == "e") || (a == "l" && b == "l") { return i + 3 }
            }
        }
        let ci = c[i]
        // `[^\r\n\p{L}\p{N}]?\p{L}+`
        if ci & ScalarClass.letter != 0 { return run(c, from: i + 1, ScalarClass.letter) }
        if ci & (ScalarClass.newline | ScalarClass.number) == 0 && i + 1 < n && c[i + 1] & ScalarClass.letter != 0 {
            return run(c, from: i + 2, ScalarClass.letter)
        }
        // `\p{N}{1,k}`
        if ci & ScalarClass.number != 0 {
            var j = i + 1
            while j < n && j - i < maxDigits && c[j] & ScalarClass.number != 0 { j += 1 }
            return j
        }
        // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
        let start = (s[i] == " " && i + 1 < n && c[i + 1] & ScalarClass.notOther == 0) ? i + 1 : i
        if c[start] & ScalarClass.notOther == 0 {
            var j = start + 1
            while j < n && c[j] & ScalarClass.notOther == 0 { j += 1 }
            return run(c, from: j, ScalarClass.newline)
        }
        // `\s*[\r\n]+`
        var end = i
        var lastNewline = -1
        while end < n && c[end] & ScalarClass.whitespace != 0 {
            if c[end] & ScalarClass.newline != 0 { lastNewline = end }
            end += 1
        }
        if lastNewline >= 0 { return lastNewline + 1 }
        return whitespaceTail(c, i)
    }

    // MARK: - Shared pieces

    /// `\s+(?!\S)|\s+` at a whitespace position.
    private static func whitespaceTail(_ c: [UInt8], _ i: Int) -> Int {
        let end = run(c, from: i + 1, ScalarClass.whitespace)
        if end == c.count { return end }
        if end - i >= 2 { return end - 1 }
        return end
    }

    private static func run(_ c: [UInt8], from start: Int, _ bit: UInt8) -> Int {
        var j = start
        while j < c.count && c[j] & bit != 0 { j += 1 }
        return j
    }

    /// Case folding as Oniguruma's `(?i:...)` applies it to the contraction letters.
    private static func lowercased(_ scalar: Unicode.Scalar) -> Unicode.Scalar {
        if scalar.value >= 0x41 && scalar.value <= 0x5A { return Unicode.Scalar(scalar.value + 32)! }
        if scalar.value == 0x17F { return "s" }  // LATIN SMALL LETTER LONG S folds to s
        return scalar
    }
}

// MARK: - Character classes

/// Bit flags of the character classes the patterns use.
enum ScalarClass {
    static let whitespace: UInt8 = 1
    static let letter: UInt8 = 2
    static let number: UInt8 = 4
    /// `\r` or `\n`.
    static let newline: UInt8 = 8
    /// Anything that is not `[^\s\p{L}\p{N}]`.
    static let notOther: UInt8 = whitespace | letter | number

    private static let asciiTable: [UInt8] = (0..<128).map { classify(Unicode.Scalar(UInt8($0))) }

    static func of(_ scalar: Unicode.Scalar) -> UInt8 {
        scalar.value < 128 ? asciiTable[Int(scalar.value)] : classify(scalar)
    }

    private static func classify(_ scalar: Unicode.Scalar) -> UInt8 {
        let properties = scalar.properties
        var bits: UInt8 = 0
        if properties.isWhitespace { bits |= whitespace }
        if scalar == "\r" || scalar == "\n" { bits |= newline }
        switch properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: bits |= letter
        case .decimalNumber, .letterNumber, .otherNumber: bits |= number
        default: break
        }
        return bits
    }
}
