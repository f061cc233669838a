import Foundation

// MARK: - Tokens

/// One lexical token of a template, with the 1-based source line it starts on.
struct TemplateToken: Equatable {
    enum Kind: Equatable {
        /// Literal output text (whitespace control already applied).
        case text(String)
        /// `{{` and `{%`; the matching end is `.variableEnd` / `.blockEnd`.
        case variableBegin, blockBegin, variableEnd, blockEnd
        case name(String)
        case string(String)
        case integer(Int)
        case float(Double)
        /// Punctuation and operators: `+ - * / // % ** ~ == != < <= > >= = . , : | ( ) [ ] { }`.
        case op(String)
    }

    var kind: Kind
    var line: Int
}

// MARK: - Lexer

/// Splits template source into tokens the way Jinja2's lexer does with transformers' settings:
/// `trim_blocks` (one newline after a block or comment tag is dropped), `lstrip_blocks` (spaces and
/// tabs before a block or comment tag alone on its line are dropped), `-` strips all whitespace on
/// its side, `+` turns the two settings off for its side, newlines become `\n` and one trailing
/// newline of the source is dropped (`keep_trailing_newline=False`).
struct TemplateLexer {
    let name: String
    private let bytes: [UInt8]
    private var position = 0
    private var line = 1
    private(set) var tokens: [TemplateToken] = []
    /// Set after a tag ending in `-`: the next text loses its leading whitespace.
    private var stripNextText = false

    init(source: String, name: String) {
        self.name = name
        var text = source.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "\n")
        if text.hasSuffix("\n") { text.removeLast() }
        bytes = Array(text.utf8)
    }

    /// All tokens of the source.
    static func tokenize(_ source: String, name: String) throws -> [TemplateToken] {
        var lexer = TemplateLexer(source: source, name: name)
        try lexer.run()
        return lexer.tokens
    }

    private mutating func run() throws {
        while position < bytes.count {
            guard let tagStart = nextTagStart(from: position) else {
                emitText(from: position, to: bytes.count, tagStripsBefore: false)
                position = bytes.count
                break
            }
            let opener = bytes[tagStart + 1]  // '{', '%' or '#'
            let marker = tagStart + 2 < bytes.count ? bytes[tagStart + 2] : 0
            let minus = marker == UInt8(ascii: "-"), plus = marker == UInt8(ascii: "+")
            var textEnd = tagStart
            if opener != UInt8(ascii: "{") && !minus && !plus { textEnd = lstripStart(before: tagStart) }
            emitText(from: position, to: textEnd, tagStripsBefore: minus)
            countLines(from: textEnd, to: tagStart)
            position = tagStart + 2 + (minus || plus ? 1 : 0)
            switch opener {
            case UInt8(ascii: "#"): try skipComment(tagLine: line)
            case UInt8(ascii: "{"): try lexTag(begin: .variableBegin, end: .variableEnd)
            default: try lexTag(begin: .blockBegin, end: .blockEnd)
            }
        }
    }

    /// The next `{{`, `{%` or `{#` at or after `start`.
    private func nextTagStart(from start: Int) -> Int? {
        var index = start
        while index + 1 < bytes.count {
            if bytes[index] == UInt8(ascii: "{") {
                let next = bytes[index + 1]
                if next == UInt8(ascii: "{") || next == UInt8(ascii: "%") || next == UInt8(ascii: "#") { return index }
            }
            index += 1
        }
        return nil
    }

    /// Where the text before a block tag ends under `lstrip_blocks`: at the start of the tag's line
    /// when only spaces and tabs stand between them, else at the tag.
    private func lstripStart(before tag: Int) -> Int {
        var index = tag
        while index > position && (bytes[index - 1] == 0x20 || bytes[index - 1] == 0x09) { index -= 1 }
        if index == 0 || bytes[index - 1] == 0x0A { return index }
        return tag
    }

    /// Emits source bytes `start..<end` as text, applying pending and requested whitespace stripping.
    private mutating func emitText(from start: Int, to end: Int, tagStripsBefore: Bool) {
        var lower = start, upper = end
        let startLine = line
        if stripNextText { while lower < upper && isSpace(bytes[lower]) { lower += 1 } }
        if tagStripsBefore { while upper > lower && isSpace(bytes[upper - 1]) { upper -= 1 } }
        stripNextText = false
        countLines(from: start, to: end)
        guard lower < upper else { return }
        tokens.append(TemplateToken(kind: .text(String(decoding: bytes[lower..<upper], as: UTF8.self)), line: startLine))
    }

    private mutating func countLines(from start: Int, to end: Int) {
        guard start < end else { return }
        for index in start..<end where bytes[index] == 0x0A { line += 1 }
    }

    private func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0B || byte == 0x0C || byte == 0x0D }

    /// After a tag's closing delimiter at `end` (exclusive): `-` strips the next text, else `trim_blocks`
    /// drops one newline after block and comment tags unless the tag ends with `+`.
    private mutating func finishTag(endMarker: UInt8?, isBlock: Bool) {
        if endMarker == UInt8(ascii: "-") { stripNextText = true; return }
        if isBlock && endMarker != UInt8(ascii: "+") && position < bytes.count && bytes[position] == 0x0A {
            position += 1
            line += 1
        }
    }

    private mutating func skipComment(tagLine: Int) throws {
        var index = position
        while index + 1 < bytes.count && !(bytes[index] == UInt8(ascii: "#") && bytes[index + 1] == UInt8(ascii: "}")) { index += 1 }
        guard index + 1 < bytes.count else {
            throw TemplateError(.syntax, "comment opened with {# is never closed with #}", template: name, line: tagLine)
        }
        let marker: UInt8? = index > position ? bytes[index - 1] : nil
        countLines(from: position, to: index)
        position = index + 2
        finishTag(endMarker: marker == UInt8(ascii: "-") || marker == UInt8(ascii: "+") ? marker : nil, isBlock: true)
    }
}

// MARK: - Inside tags

extension TemplateLexer {
    /// Lexes the expression tokens of one `{{ }}` or `{% %}` tag up to and including its end delimiter.
    private mutating func lexTag(begin: TemplateToken.Kind, end: TemplateToken.Kind) throws {
        let tagLine = line
        tokens.append(TemplateToken(kind: begin, line: tagLine))
        let isBlock = begin == .blockBegin
        let closer = isBlock ? UInt8(ascii: "%") : UInt8(ascii: "}")
        var depth = 0
        let firstToken = tokens.count
        while true {
            skipWhitespace()
            guard position < bytes.count else {
                throw TemplateError(.syntax, "\(isBlock ? "{%" : "{{") is never closed with \(isBlock ? "%}" : "}}")",
                                    template: name, line: tagLine)
            }
            if depth == 0, let marker = endOfTag(closer: closer) {
                tokens.append(TemplateToken(kind: end, line: line))
                finishTag(endMarker: marker, isBlock: isBlock)
                if isBlock, tokens.count == firstToken + 2, tokens[firstToken].kind == .name("raw") { try lexRawBody(line: tagLine) }
                return
            }
            let token = try nextExpressionToken()
            if case .op(let op) = token {
                if op == "(" || op == "[" || op == "{" { depth += 1 }
                if op == ")" || op == "]" || op == "}" { depth = max(0, depth - 1) }
            }
            tokens.append(TemplateToken(kind: token, line: line))
        }
    }

    /// When the tag ends at `position` (`}}`/`%}`, optionally preceded by `-` or `+`), consumes it and returns
    /// the marker (0 for none); otherwise nil.
    private mutating func endOfTag(closer: UInt8) -> UInt8?? {
        func closes(at index: Int) -> Bool {
            index + 1 < bytes.count && bytes[index] == closer && bytes[index + 1] == UInt8(ascii: "}")
        }
        if closes(at: position) { position += 2; return .some(nil) }
        let marker = bytes[position]
        if (marker == UInt8(ascii: "-") || marker == UInt8(ascii: "+")) && closes(at: position + 1) {
            position += 3
            return .some(marker)
        }
        return nil
    }

    private mutating func skipWhitespace() {
        while position < bytes.count && isSpace(bytes[position]) {
            if bytes[position] == 0x0A { line += 1 }
            position += 1
        }
    }

    /// `{% raw %}...{% endraw %}`: everything up to the end tag is text.
    private mutating func lexRawBody(line rawLine: Int) throws {
        tokens.removeLast(3)  // blockBegin, name raw, blockEnd
        let source = String(decoding: bytes[position...], as: UTF8.self)
        guard let range = source.range(of: #"\{%[-+]?\s*endraw\s*[-+]?%\}"#, options: .regularExpression) else {
            throw TemplateError(.syntax, "{% raw %} is never closed with {% endraw %}", template: name, line: rawLine)
        }
        let body = Array(source[..<range.lowerBound].utf8)
        let tag = String(source[range])
        var text = String(decoding: body, as: UTF8.self)
        if stripNextText { text = String(text.drop { $0.isWhitespace }) }
        stripNextText = false
        if tag.hasPrefix("{%-") { while let last = text.last, last.isWhitespace { text.removeLast() } }
        if !text.isEmpty { tokens.append(TemplateToken(kind: .text(text), line: line)) }
        countLines(from: position, to: position + body.count + tag.utf8.count)
        position += body.count + tag.utf8.count
        finishTag(endMarker: tag.hasSuffix("-%}") ? UInt8(ascii: "-") : (tag.hasSuffix("+%}") ? UInt8(ascii: "+") : nil),
                  isBlock: true)
    }

    private mutating func nextExpressionToken() throws -> TemplateToken.Kind {
        let byte = bytes[position]
        if isNameStart(byte) {
            let start = position
            while position < bytes.count && (isNameStart(bytes[position]) || isDigit(bytes[position])) { position += 1 }
            return .name(String(decoding: bytes[start..<position], as: UTF8.self))
        }
        if isDigit(byte) { return try number() }
        if byte == UInt8(ascii: "'") || byte == UInt8(ascii: "\"") { return try stringLiteral(quote: byte) }
        for op in ["//", "**", "==", "!=", "<=", ">="] where matches(op) {
            position += 2
            return .op(op)
        }
        if "+-*/%~<>=.,:|()[]{}".utf8.contains(byte) {
            position += 1
            return .op(String(UnicodeScalar(byte)))
        }
        throw TemplateError(.syntax, "unexpected character '\(String(UnicodeScalar(byte)))'", template: name, line: line)
    }

    private func matches(_ op: String) -> Bool {
        let opBytes = Array(op.utf8)
        return position + opBytes.count <= bytes.count && Array(bytes[position..<position + opBytes.count]) == opBytes
    }

    private func isNameStart(_ byte: UInt8) -> Bool {
        (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) || byte == UInt8(ascii: "_")
    }

    private func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }

    /// An integer (`12`, `1_000`) or float (`1.5`, `2e3`) literal.
    private mutating func number() throws -> TemplateToken.Kind {
        let start = position
        var isFloat = false
        while position < bytes.count && (isDigit(bytes[position]) || bytes[position] == UInt8(ascii: "_")) { position += 1 }
        if position + 1 < bytes.count && bytes[position] == UInt8(ascii: ".") && isDigit(bytes[position + 1]) {
            isFloat = true
            position += 1
            while position < bytes.count && (isDigit(bytes[position]) || bytes[position] == UInt8(ascii: "_")) { position += 1 }
        }
        if position < bytes.count && (bytes[position] == UInt8(ascii: "e") || bytes[position] == UInt8(ascii: "E")) {
            var index = position + 1
            if index < bytes.count && (bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-")) { index += 1 }
            if index < bytes.count && isDigit(bytes[index]) {
                isFloat = true
                position = index
                while position < bytes.count && isDigit(bytes[position]) { position += 1 }
            }
        }
        let text = String(decoding: bytes[start..<position], as: UTF8.self).replacingOccurrences(of: "_", with: "")
        if isFloat, let value = Double(text) { return .float(value) }
        if let value = Int(text) { return .integer(value) }
        throw TemplateError(.syntax, "number \(text) out of range", template: name, line: line)
    }
}

// MARK: - String literals

extension TemplateLexer {
    /// A quoted literal with Python's escapes (`\n \t \r \\ \' \" \xhh \uhhhh \Uhhhhhhhh`, octal); an unknown
    /// escape keeps its backslash, as Python's `unicode-escape` codec does.
    fileprivate mutating func stringLiteral(quote: UInt8) throws -> TemplateToken.Kind {
        let startLine = line
        position += 1
        var scalars = String.UnicodeScalarView()
        var raw = [UInt8]()
        func flushRaw() {
            scalars.append(contentsOf: String(decoding: raw, as: UTF8.self).unicodeScalars)
            raw.removeAll()
        }
        while position < bytes.count && bytes[position] != quote {
            let byte = bytes[position]
            if byte == 0x0A { line += 1 }
            guard byte == UInt8(ascii: "\\"), position + 1 < bytes.count else {
                raw.append(byte)
                position += 1
                continue
            }
            flushRaw()
            position += 1
            scalars.append(contentsOf: try escape())
        }
        guard position < bytes.count else {
            throw TemplateError(.syntax, "string literal is never closed", template: name, line: startLine)
        }
        flushRaw()
        position += 1
        return .string(String(scalars))
    }

    /// The scalars of the escape sequence starting at `position` (just after the backslash).
    private mutating func escape() throws -> [UnicodeScalar] {
        let byte = bytes[position]
        position += 1
        switch byte {
        case UInt8(ascii: "n"): return ["\n"]
        case UInt8(ascii: "t"): return ["\t"]
        case UInt8(ascii: "r"): return ["\r"]
        case UInt8(ascii: "\\"): return ["\\"]
        case UInt8(ascii: "'"): return ["'"]
        case UInt8(ascii: "\""): return ["\""]
        case UInt8(ascii: "a"): return ["\u{07}"]
        case UInt8(ascii: "b"): return ["\u{08}"]
        case UInt8(ascii: "f"): return ["\u{0C}"]
        case UInt8(ascii: "v"): return ["\u{0B}"]
        case 0x0A: return []  // backslash-newline continues the literal
        case UInt8(ascii: "x"): return [try hexScalar(digits: 2)]
        case UInt8(ascii: "u"): return [try hexScalar(digits: 4)]
        case UInt8(ascii: "U"): return [try hexScalar(digits: 8)]
        case UInt8(ascii: "0")...UInt8(ascii: "7"):
            var value = UInt32(byte - 0x30)
            var count = 1
            while count < 3 && position < bytes.count && (0x30...0x37).contains(bytes[position]) {
                value = value * 8 + UInt32(bytes[position] - 0x30)
                position += 1
                count += 1
            }
            return [UnicodeScalar(value) ?? "?"]
        default:
            position -= 1
            return ["\\"]
        }
    }

    private mutating func hexScalar(digits: Int) throws -> UnicodeScalar {
        guard position + digits <= bytes.count,
              let value = UInt32(String(decoding: bytes[position..<position + digits], as: UTF8.self), radix: 16),
              let scalar = UnicodeScalar(value) else {
            throw TemplateError(.syntax, "bad \\x/\\u escape in a string literal", template: name, line: line)
        }
        position += digits
        return scalar
    }
}
