import Foundation

// MARK: - Deterministic mutations of valid inputs

/// Random mutations of valid input files for the fuzz tests, from a fixed seed (the same seed
/// gives the same cases on every machine, so a failure names a case that can be replayed).
///
/// Two families:
/// - byte mutations (`mutateBytes`): bit flips, byte overwrites, insertions of random bytes or
///   JSON-breaking tokens, deletions, truncations, duplicated spans, splices with another valid input;
/// - JSON mutations (`mutateJSON`): a node replaced by another type (numbers <-> strings <-> arrays
///   <-> objects <-> null), by huge / negative / fractional / out-of-range numbers, by huge strings
///   or deep nesting; members deleted, duplicated, renamed or added; nodes moved or spliced in from
///   another valid input.
/// Every mutation returns a short description so a failing case says what was done.
public struct Mutator {
    public var random: TestRandom

    public init(seed: UInt64) { random = TestRandom(seed: seed) }

    // MARK: - Random choices

    /// Uniform in 0..<bound (bound > 0).
    public mutating func below(_ bound: Int) -> Int { Int(random.next() % UInt64(max(bound, 1))) }

    /// True with probability `numerator / denominator`.
    public mutating func chance(_ numerator: Int, in denominator: Int) -> Bool { below(denominator) < numerator }

    public mutating func pick<T>(_ choices: [T]) -> T { choices[below(choices.count)] }

    // MARK: - Interesting values

    /// Number literals at the edges: zero, negatives, fractions, Int32/Int64/UInt64 limits and past
    /// them, 10^15, values that overflow Double, denormal underflow, absurd precision.
    public static let numberLiterals: [String] = [
        "0", "-0", "-1", "1", "2", "3", "7", "-7", "0.5", "1.5", "-2.5", "3.0", "1e3", "1e-7", "1e-400",
        "1e308", "1e400", "-1e400", "127", "255", "256", "257", "258", "259", "65535", "65536",
        "2147483647", "2147483648", "-2147483649", "4294967295", "4294967296",
        "1000000000000000", "1e15", "1125899906842624", "4611686018427387904",
        "9223372036854775807", "9223372036854775808", "-9223372036854775808", "-9223372036854775809",
        "18446744073709551615", "18446744073709551616", "123456789012345678901234567890",
        "0.000000000000000000000000000000000000000000001",
    ]

    /// Fragments that break or stretch a JSON document when inserted as bytes.
    public static let byteTokens: [String] = [
        "{", "}", "[", "]", "\"", ",", ":", "\\", "\\u", "\\ud800", "\\udc00\\ud800", "\\u0000", "null", "true",
        "NaN", "Infinity", "-", "1e999", "-1", "0x10", "\n", "\r\n", "\t", " ", "\u{0}", "é", "😀", "<|im_end|>",
        "[[[[[[[[[[", "]]]]]]]]", "{\"\":", "//", "/*",
    ]

    /// Scalars that stress text handling: NUL, combining marks (NFC), emoji, RTL, BOM, a lone
    /// high-plane scalar, line separators.
    public static let textPieces: [String] = [
        "", " ", "a", "\u{0}", "\u{1}", "e\u{301}", "\u{FEFF}", "😀", "👩‍👩‍👧", "\u{10FFFF}", "\u{2028}", "ا", "\r\n",
        "<|im_start|>", "<|im_end|>", "<|endoftext|>", "'s", "123456", "   \n\n  ",
    ]

    /// A random number literal: an edge value, or one built from random digits and exponents.
    public mutating func numberLiteral() -> String {
        switch below(4) {
        case 0: return String(Int64(bitPattern: random.next()) >> Int64(below(63)))
        case 1: return "\(below(2) == 0 ? "-" : "")\(below(1_000)).\(below(1_000))e\(below(2) == 0 ? "-" : "")\(below(500))"
        default: return pick(Self.numberLiterals)
        }
    }

    /// A random string value: short pieces of interesting text, or a long run (up to 100 KB).
    public mutating func stringValue() -> String {
        switch below(6) {
        case 0: return String(repeating: pick(Self.textPieces.filter { !$0.isEmpty }), count: 1 + below(50_000))
        case 1: return String((0..<(1 + below(20))).map { _ in Character(Unicode.Scalar(UInt8(below(128)))) })
        default: return (0..<(1 + below(4))).map { _ in pick(Self.textPieces) }.joined()
        }
    }

    /// `depth` nested arrays (or objects) around a value, as a raw fragment (no recursion to write it).
    public mutating func deepNesting() -> FuzzJSON {
        let depth = pick([16, 100, 257, 513, 1_000, 10_000, 100_000])
        if below(2) == 0 {
            return .raw(String(repeating: "[", count: depth) + "1" + String(repeating: "]", count: depth))
        }
        return .raw(String(repeating: "{\"a\":", count: depth) + "1" + String(repeating: "}", count: depth))
    }

    // MARK: - Byte mutations

    /// One to three byte-level mutations of `input`; `others` are valid inputs of the same kind to splice from.
    public mutating func mutateBytes(_ input: [UInt8], others: [[UInt8]] = []) -> (bytes: [UInt8], description: String) {
        var bytes = input
        var done: [String] = []
        for _ in 0..<(1 + below(3)) {
            done.append(mutateBytesOnce(&bytes, others: others))
        }
        return (bytes, done.joined(separator: "; "))
    }

    private mutating func mutateBytesOnce(_ bytes: inout [UInt8], others: [[UInt8]]) -> String {
        let count = bytes.count
        let position = below(count + 1)
        switch below(9) {
        case 0 where count > 0:
            let bit = below(8)
            bytes[min(position, count - 1)] ^= UInt8(1 << bit)
            return "flip bit \(bit) at \(min(position, count - 1))"
        case 1 where count > 0:
            let byte = chance(1, in: 2) ? UInt8(below(256)) : pick(Array("{}[]\",:\\0-e\u{0}".utf8) + [0xFF, 0xC3, 0x80, 0xF0])
            bytes[min(position, count - 1)] = byte
            return "set byte \(min(position, count - 1)) to \(byte)"
        case 2:
            let inserted = (0..<(1 + below(16))).map { _ in UInt8(below(256)) }
            bytes.insert(contentsOf: inserted, at: position)
            return "insert \(inserted.count) random bytes at \(position)"
        case 3:
            let token = pick(Self.byteTokens)
            bytes.insert(contentsOf: Array(token.utf8), at: position)
            return "insert \(token.debugDescription) at \(position)"
        case 4 where count > 0:
            let start = min(position, count - 1)
            let length = 1 + below(min(64, count - start))
            bytes.removeSubrange(start..<(start + length))
            return "delete \(length) bytes at \(start)"
        case 5:
            bytes.removeSubrange(position..<count)
            return "truncate to \(position) bytes"
        case 6 where count > 0:
            let start = below(count)
            let length = 1 + below(min(256, count - start))
            let span = Array(bytes[start..<(start + length)])
            let copies = chance(1, in: 8) ? 1 + below(2_000) : 1
            let target = below(count + 1)
            bytes.insert(contentsOf: (0..<copies).flatMap { _ in span }, at: target)
            return "duplicate \(length) bytes from \(start) x\(copies) at \(target)"
        case 7 where !others.isEmpty:
            let other = pick(others)
            let cut = below(other.count + 1)
            bytes = Array(bytes[..<position]) + Array(other[cut...])
            return "splice: first \(position) bytes + another input from \(cut)"
        default:
            let byte = UInt8(below(256))
            bytes.insert(byte, at: position)
            return "insert byte \(byte) at \(position)"
        }
    }

    // MARK: - JSON mutations

    /// One to three structural mutations of a JSON document; `others` are valid documents to splice nodes from.
    public mutating func mutateJSON(_ document: FuzzJSON, others: [FuzzJSON] = []) -> (json: FuzzJSON, description: String) {
        var json = document
        var done: [String] = []
        for _ in 0..<(1 + below(3)) {
            done.append(mutateJSONOnce(&json, others: others))
        }
        return (json, done.joined(separator: "; "))
    }

    private mutating func mutateJSONOnce(_ json: inout FuzzJSON, others: [FuzzJSON]) -> String {
        let paths = json.paths
        // Depth first, then a node at that depth: structural keys near the root get mutated as often
        // as the thousands of vocabulary entries deeper down.
        let depths = Array(Set(paths.map(\.count))).sorted()
        let depth = pick(depths)
        let path = pick(paths.filter { $0.count == depth })
        let node = json[path[...]]
        let place = path.map(String.init).joined(separator: ".")
        switch below(10) {
        case 0, 1, 2:
            let replacement = swappedValue(for: node)
            json[path[...]] = replacement
            return "node \(place) -> \(replacement.text.prefix(40))"
        case 3:
            // Delete a member or element of a container (or of the node's parent).
            guard let (container, containerPath) = container(at: path, in: json) else { return "no container" }
            switch container {
            case .array(var elements) where !elements.isEmpty:
                let index = below(elements.count)
                elements.remove(at: index)
                json[containerPath[...]] = .array(elements)
                return "delete element \(index) of \(containerPath)"
            case .object(var members) where !members.isEmpty:
                let index = below(members.count)
                let key = members.remove(at: index).key
                json[containerPath[...]] = .object(members)
                return "delete key \(key) of \(containerPath)"
            default: return "empty container"
            }
        case 4:
            // Duplicate a member (same key twice) or an element.
            guard let (container, containerPath) = container(at: path, in: json) else { return "no container" }
            switch container {
            case .array(var elements) where !elements.isEmpty:
                let index = below(elements.count)
                elements.insert(elements[index], at: below(elements.count + 1))
                json[containerPath[...]] = .array(elements)
                return "duplicate element \(index) of \(containerPath)"
            case .object(var members) where !members.isEmpty:
                let index = below(members.count)
                var copy = members[index]
                copy.value = chance(1, in: 2) ? swappedValue(for: copy.value) : copy.value
                members.insert(copy, at: below(members.count + 1))
                json[containerPath[...]] = .object(members)
                return "duplicate key \(copy.key) of \(containerPath)"
            default: return "empty container"
            }
        case 5:
            // Rename a key, or add a new one.
            guard let (container, containerPath) = container(at: path, in: json),
                  case .object(var members) = container else { return "no object" }
            if !members.isEmpty, chance(1, in: 2) {
                let index = below(members.count)
                var key = Array(members[index].key.unicodeScalars)
                if key.isEmpty || chance(1, in: 3) { key.append(pick(["_", "X", "é", "\u{0}"])) } else { key[below(key.count)] = "Z" }
                var view = String.UnicodeScalarView()
                view.append(contentsOf: key)
                members[index].key = String(view)
                json[containerPath[...]] = .object(members)
                return "rename key \(index) of \(containerPath)"
            }
            let key = pick(allKeys(of: json) + ["", "extra", "__metadata__", "type"])
            members.insert((key, swappedValue(for: .null)), at: below(members.count + 1))
            json[containerPath[...]] = .object(members)
            return "add key \(key) to \(containerPath)"
        case 6:
            // Move another node of the same document here.
            let source = json[pick(paths)[...]]
            json[path[...]] = source
            return "node \(place) <- another node of the document"
        case 7 where !others.isEmpty:
            let other = pick(others)
            let source = other[pick(other.paths)[...]]
            json[path[...]] = source
            return "node \(place) <- a node of another input"
        case 8:
            json[path[...]] = deepNesting()
            return "node \(place) -> deep nesting"
        default:
            json[path[...]] = wrapped(node)
            return "node \(place) wrapped"
        }
    }

    /// A value of another type, or an edge value of the same type, for `node`.
    public mutating func swappedValue(for node: FuzzJSON) -> FuzzJSON {
        switch below(12) {
        case 0: return .null
        case 1: return .bool(chance(1, in: 2))
        case 2, 3: return .number(numberLiteral())
        case 4:
            if case .number(let literal) = node { return .number(nudge(literal)) }
            return .number(numberLiteral())
        case 5:
            // A number or literal written as a string ("12"), or a string unquoted.
            switch node {
            case .number(let literal): return .string(literal)
            case .string(let text) where !text.isEmpty && text.utf8.allSatisfy({ "+-0123456789.eE".utf8.contains($0) }):
                return .number(text)
            default: return .string(node.text)
            }
        case 6, 7: return .string(stringValue())
        case 8: return .array(chance(1, in: 2) ? [] : [node, .number(numberLiteral())])
        case 9: return .object(chance(1, in: 2) ? [] : [("a", node)])
        case 10: return .raw(pick(["NaN", "-Infinity", "\"\\ud800\"", "\"\\udfff\\ud800\"", "\"\\u0000\"", "01", "1.", ".5", "+1", "\"\u{7F}\""]))
        default: return deepNesting()
        }
    }

    /// A number literal near `literal`: negated, +/- 1, scaled by a power of ten, or with extra digits.
    private mutating func nudge(_ literal: String) -> String {
        switch below(5) {
        case 0: return literal.hasPrefix("-") ? String(literal.dropFirst()) : "-" + literal
        case 1: return Int(literal).map { String($0 &+ (chance(1, in: 2) ? 1 : -1)) } ?? literal + "1"
        case 2: return literal + "e\(below(20))"
        case 3: return literal + String(repeating: "0", count: 1 + below(20))
        default: return Int(literal).map { String($0 &* Int(pow(10, Double(below(16))))) } ?? "0"
        }
    }

    private mutating func wrapped(_ node: FuzzJSON) -> FuzzJSON {
        chance(1, in: 2) ? .array([node]) : .object([("value", node)])
    }

    /// The innermost array or object on `path` (the node itself if it is one, else its parent).
    private func container(at path: [Int], in json: FuzzJSON) -> (FuzzJSON, [Int])? {
        var candidate = path
        while true {
            let node = json[candidate[...]]
            switch node {
            case .array, .object: return (node, candidate)
            default:
                if candidate.isEmpty { return nil }
                candidate.removeLast()
            }
        }
    }

    private func allKeys(of json: FuzzJSON) -> [String] {
        switch json {
        case .object(let members): return members.map(\.key) + members.flatMap { allKeys(of: $0.value) }
        case .array(let elements): return elements.prefix(8).flatMap { allKeys(of: $0) }
        default: return []
        }
    }
}
