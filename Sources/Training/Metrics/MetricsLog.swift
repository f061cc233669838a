import Foundation

/// The contents of a `metrics.jsonl` file: logged steps in file order.
///
/// Each line is a flat JSON object with an integer `"step"` and numeric metrics; `null`
/// (a non-finite value) reads back as NaN. Strings and booleans are not metrics and are skipped.
public struct MetricsLog: Sendable {
    /// One logged step.
    public struct Record: Sendable {
        public var step: Int
        /// Metrics in the order they appear on the line.
        public var metrics: [(name: String, value: Double)]

        public init(step: Int, metrics: [(name: String, value: Double)]) {
            self.step = step
            self.metrics = metrics
        }

        public subscript(name: String) -> Double? {
            metrics.first(where: { $0.name == name })?.value
        }
    }

    public var records: [Record]
    /// What the reader tolerated, one line each (a torn last line it dropped).
    public var notes: [String] = []

    public init(records: [Record]) { self.records = records }

    /// Metric names in order of first appearance.
    public var names: [String] {
        var seen = Set<String>(), ordered: [String] = []
        for record in records {
            for metric in record.metrics where seen.insert(metric.name).inserted { ordered.append(metric.name) }
        }
        return ordered
    }

    /// Steps and values of one metric, over the records that have it.
    public func series(_ name: String) -> (steps: [Double], values: [Double]) {
        var steps: [Double] = [], values: [Double] = []
        for record in records {
            if let value = record[name] {
                steps.append(Double(record.step))
                values.append(value)
            }
        }
        return (steps, values)
    }

    // MARK: - Reading

    /// Reads a `metrics.jsonl` file. Blank lines are skipped.
    public static func read(_ url: URL) throws -> MetricsLog {
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw MetricsError("metrics file \(url.path) does not exist; pass the metrics.jsonl that `dpo train` writes in its --out directory")
        }
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw MetricsError("cannot read metrics file \(url.path): \(error.localizedDescription); pass the metrics.jsonl written by `dpo train`")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw MetricsError("\(url.path) is not UTF-8 text; pass the metrics.jsonl written by `dpo train`")
        }
        return try parse(text, source: url.path)
    }

    /// Parses JSONL text; `source` names the file in error messages.
    /// A last line without its newline that does not parse was cut by a crash mid-write: it
    /// is dropped (with a note), not an error.
    public static func parse(_ text: String, source: String) throws -> MetricsLog {
        var records: [Record] = []
        var notes: [String] = []
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        for (index, line) in lines.enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespacesAndNewlines)
            if trimmed.isEmpty { continue }
            do {
                records.append(try parseRecord(Array(trimmed.utf8)))
            } catch let error as MetricsError {
                if index == lines.count - 1 {
                    notes.append("\(source):\(index + 1): dropped a torn last line (\(line.utf8.count) bytes, an interrupted write)")
                    continue
                }
                throw MetricsError("\(source):\(index + 1): \(error.message)")
            }
        }
        var log = MetricsLog(records: records)
        log.notes = notes
        return log
    }

    /// Cuts a torn last line (text after the last newline that does not parse) off the file at
    /// `url`, so a resumed run appends after whole lines; returns a message when it did.
    public static func dropTornLastLine(of url: URL) throws -> String? {
        guard let data = FileManager.default.contents(atPath: url.path), let last = data.last, last != 0x0A else { return nil }
        let cut = (data.lastIndex(of: 0x0A).map { $0 + 1 }) ?? data.startIndex
        let tail = Array(data[cut...])
        if (try? parseRecord(tail)) != nil { return nil }
        do { try data[..<cut].write(to: url, options: .atomic) } catch {
            throw MetricsError("cannot repair \(url.path): \(error.localizedDescription)")
        }
        return "\(url.path): dropped its torn last line (\(tail.count) bytes, an interrupted write)"
    }

    static func parseRecord(_ bytes: [UInt8]) throws -> Record {
        var parser = FlatJSONObjectParser(bytes: bytes)
        let fields = try parser.parseObject()
        var step: Int?
        var metrics: [(name: String, value: Double)] = []
        for (key, value) in fields {
            if key == "step" {
                guard case .number(let number) = value, number == number.rounded(), abs(number) < 1e15 else {
                    throw MetricsError("key \"step\" must be an integer")
                }
                step = Int(number)
                continue
            }
            switch value {
            case .number(let number): metrics.append((key, number))
            case .null: metrics.append((key, .nan))
            case .other: continue
            }
        }
        guard let step else { throw MetricsError("missing key \"step\"; each line must be {\"step\": N, \"loss\": ...}") }
        return Record(step: step, metrics: metrics)
    }
}

// MARK: - A flat JSON object parser

/// Parses one JSON object whose values are numbers, null, booleans or strings (no nesting),
/// keeping the key order (Foundation's JSONSerialization does not).
struct FlatJSONObjectParser {
    enum Value { case number(Double), null, other }

    let bytes: [UInt8]
    var position = 0

    init(bytes: [UInt8]) { self.bytes = bytes }

    mutating func parseObject() throws -> [(String, Value)] {
        skipSpace()
        try expect(UInt8(ascii: "{"))
        var fields: [(String, Value)] = []
        skipSpace()
        if peek() == UInt8(ascii: "}") { position += 1; return try finish(fields) }
        while true {
            skipSpace()
            let key = try parseString()
            skipSpace()
            try expect(UInt8(ascii: ":"))
            skipSpace()
            let value = try parseValue(key: key)
            fields.append((key, value))
            skipSpace()
            guard let next = peek() else { throw MetricsError("line ends inside the object; expected '}'") }
            position += 1
            if next == UInt8(ascii: "}") { return try finish(fields) }
            if next != UInt8(ascii: ",") { throw MetricsError("expected ',' or '}' at column \(position)") }
        }
    }

    private mutating func finish(_ fields: [(String, Value)]) throws -> [(String, Value)] {
        skipSpace()
        if position != bytes.count { throw MetricsError("unexpected text after the object at column \(position + 1)") }
        return fields
    }

    private mutating func parseValue(key: String) throws -> Value {
        guard let first = peek() else { throw MetricsError("missing value for key \"\(key)\"") }
        if first == UInt8(ascii: "\"") { _ = try parseString(); return .other }
        if first == UInt8(ascii: "{") || first == UInt8(ascii: "[") {
            throw MetricsError("key \"\(key)\" holds a nested value; metrics must be numbers")
        }
        let start = position
        while let byte = peek(), byte != UInt8(ascii: ","), byte != UInt8(ascii: "}"), byte != UInt8(ascii: " ") {
            position += 1
        }
        let token = String(decoding: bytes[start..<position], as: UTF8.self)
        switch token {
        case "null": return .null
        case "true", "false": return .other
        case "NaN": return .number(.nan)
        default:
            guard let number = Double(token) else {
                throw MetricsError("key \"\(key)\" has value \(token), which is not a number")
            }
            return .number(number)
        }
    }

    private mutating func parseString() throws -> String {
        try expect(UInt8(ascii: "\""))
        var scalars = String.UnicodeScalarView()
        var raw: [UInt8] = []
        func flushRaw() { scalars.append(contentsOf: String(decoding: raw, as: UTF8.self).unicodeScalars); raw = [] }
        while true {
            guard let byte = peek() else { throw MetricsError("unterminated string") }
            position += 1
            if byte == UInt8(ascii: "\"") { break }
            if byte != UInt8(ascii: "\\") { raw.append(byte); continue }
            guard let escape = peek() else { throw MetricsError("unterminated escape in string") }
            position += 1
            flushRaw()
            switch escape {
            case UInt8(ascii: "n"): scalars.append("\n")
            case UInt8(ascii: "t"): scalars.append("\t")
            case UInt8(ascii: "r"): scalars.append("\r")
            case UInt8(ascii: "b"): scalars.append("\u{8}")
            case UInt8(ascii: "f"): scalars.append("\u{c}")
            case UInt8(ascii: "u"):
                guard position + 4 <= bytes.count,
                      let code = UInt32(String(decoding: bytes[position..<position + 4], as: UTF8.self), radix: 16)
                else { throw MetricsError("bad \\u escape in string") }
                position += 4
                scalars.append(Unicode.Scalar(code) ?? "\u{FFFD}")
            default: scalars.append(Unicode.Scalar(escape))
            }
        }
        flushRaw()
        return String(scalars)
    }

    private mutating func expect(_ byte: UInt8) throws {
        guard peek() == byte else {
            throw MetricsError("expected '\(Character(Unicode.Scalar(byte)))' at column \(position + 1)")
        }
        position += 1
    }

    private func peek() -> UInt8? { position < bytes.count ? bytes[position] : nil }

    private mutating func skipSpace() {
        while let byte = peek(), byte == 0x20 || byte == 0x09 || byte == 0x0D { position += 1 }
    }
}
