import Foundation
import Tokenization

// MARK: - Reading dataset files

/// Options of `DatasetReader`.
public struct DatasetReadOptions: Sendable {
    public var keys: DatasetKeys
    /// Skip invalid records (and count them) instead of failing on the first one.
    public var skipInvalid: Bool
    /// Whether the command reading the file has `--skip-invalid`, so its errors may offer it
    /// (`dpo logps`, one output line per record, has not).
    public var offersSkipping = true
    public init(keys: DatasetKeys = DatasetKeys(), skipInvalid: Bool = false) {
        self.keys = keys
        self.skipInvalid = skipInvalid
    }
}

/// A dataset file's valid records, its detected format and what was skipped.
public struct Dataset<Example: Sendable>: Sendable {
    public var file: String
    public var format: DatasetFormat
    public var examples: [Example]
    /// 1-based line (JSONL) or 0-based element index (JSON array) of each example.
    public var sourcePositions: [Int]
    /// The same positions as error locations (`.line` or `.element`), for messages.
    public var sourceLocations: [DataError.Location]
    /// The records skipped with `skipInvalid`, each with its error.
    public var skipped: [DataError]
}

/// Reads JSON Lines files (one object per line; blank lines ignored) and JSON array files (`[{...}, ...]`).
public enum DatasetReader {
    /// Reads preference pairs (standard, conversational, implicit prompt, string implicit prompt).
    public static func readPreferences(from url: URL, options: DatasetReadOptions = DatasetReadOptions())
        throws -> Dataset<PreferenceExample> {
        try read(from: url, options: options, wantPreference: true) { record, format, keys in
            try preferenceExample(record, format: format, keys: keys)
        }
    }

    /// Reads supervised examples (prompt+completion strings or messages, messages lists).
    public static func readSupervised(from url: URL, options: DatasetReadOptions = DatasetReadOptions())
        throws -> Dataset<SupervisedExample> {
        try read(from: url, options: options, wantPreference: false) { record, format, keys in
            try supervisedExample(record, format: format, keys: keys)
        }
    }

    /// The format of a file, detected from its first valid record (for tools that accept both kinds).
    /// A bad record before it is reported as reading would report it, or passed over with `skipInvalid`.
    public static func detectFormat(of url: URL, keys: DatasetKeys = DatasetKeys(), skipInvalid: Bool = false) throws -> DatasetFormat {
        let file = url.path
        if let problem = FileProblem.file(file) { throw DataError(file: file, location: .file, problem: problem) }
        guard let data = FileManager.default.contents(atPath: file) else {
            throw DataError(file: file, location: .file, problem: "cannot be read")
        }
        let records = try splitRecords(data, file: file)
        for (location, _, content) in records {
            do {
                switch content {
                case .success(let record): return try detectFormat(record, keys: keys)
                case .failure(let problem): throw problem
                }
            } catch let problem as RecordProblem {
                if skipInvalid { continue }
                throw DataError(file: file, location: location, key: problem.key, problem: problem.problem)
            }
        }
        throw DataError(file: file, location: .file, problem: records.isEmpty ? "file is empty (no records)"
                            : "no valid records: --skip-invalid skipped all \(records.count)")
    }

    // MARK: - Records

    /// A problem with one record, before the file and position are attached.
    struct RecordProblem: Error {
        var key: String?
        var problem: String
        /// False for a record of the other kind of data: the file is likely wrong as a whole,
        /// and skipping its lines would leave nothing.
        var suggestsSkipping = true
    }

    private static func read<Example>(
        from url: URL, options: DatasetReadOptions, wantPreference: Bool,
        parse: ([String: Any], DatasetFormat, DatasetKeys) throws -> Example
    ) throws -> Dataset<Example> {
        let file = url.path
        if let problem = FileProblem.file(file) { throw DataError(file: file, location: .file, problem: problem) }
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw DataError(file: file, location: .file, problem: "cannot read: \(FileProblem.cause(of: error))")
        }
        let records = try splitRecords(data, file: file)
        if records.isEmpty { throw DataError(file: file, location: .file, problem: "file is empty (no records)") }

        var format: DatasetFormat?
        var dataset = Dataset<Example>(file: file, format: .standard, examples: [], sourcePositions: [], sourceLocations: [], skipped: [])
        for (location, position, content) in records {
            do {
                let record: [String: Any]
                switch content {
                case .success(let object): record = object
                case .failure(let problem): throw problem
                }
                if format == nil {
                    let detected = try detectFormat(record, keys: options.keys)
                    if detected.isPreference != wantPreference {
                        throw RecordProblem(key: nil, problem: wantPreference
                            ? "holds supervised data (\(detected.rawValue)) where preference pairs were expected "
                              + "(keys '\(options.keys.prompt)', '\(options.keys.chosen)', '\(options.keys.rejected)')"
                            : "holds preference pairs (\(detected.rawValue)) where supervised data was expected "
                              + "(keys 'prompt'+'completion' or 'messages')", suggestsSkipping: false)
                    }
                    format = detected
                }
                dataset.examples.append(try parse(record, format!, options.keys))
                dataset.sourcePositions.append(position)
                dataset.sourceLocations.append(location)
            } catch let problem as RecordProblem {
                let error = DataError(file: file, location: location, key: problem.key, problem: problem.problem,
                                      suggestsSkipping: problem.suggestsSkipping && !options.skipInvalid && options.offersSkipping)
                guard options.skipInvalid else { throw error }
                dataset.skipped.append(error)
            }
        }
        guard let format, !dataset.examples.isEmpty else {
            throw DataError(file: file, location: .file,
                            problem: "no valid records: --skip-invalid skipped all \(dataset.skipped.count) "
                                + "(first: \(dataset.skipped.first?.description ?? "-"))")
        }
        dataset.format = format
        return dataset
    }

    /// Records of a file: for JSON Lines one per non-blank line, for a JSON array one per element.
    private static func splitRecords(_ data: Data, file: String)
        throws -> [(DataError.Location, Int, Result<[String: Any], RecordProblem>)] {
        let bytes = [UInt8](data)
        guard let first = bytes.firstIndex(where: { !($0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09) }) else {
            return []
        }
        if bytes[first] == UInt8(ascii: "[") {
            guard String(bytes: bytes, encoding: .utf8) != nil else {
                throw DataError(file: file, location: .file, problem: "invalid UTF-8 in JSON array file")
            }
            let array: [Any]
            do {
                guard let parsed = try JSONSerialization.jsonObject(with: data) as? [Any] else {
                    throw DataError(file: file, location: .file, problem: "not a JSON array")
                }
                array = parsed
            } catch let error as DataError { throw error } catch {
                throw DataError(file: file, location: .file, problem: "malformed JSON array: \(FileProblem.cause(of: error, in: bytes)) "
                    + "(a file is one JSON array or JSON Lines, one object per line, not both)")
            }
            return array.enumerated().map { index, element in
                if let object = element as? [String: Any] { return (.element(index), index, .success(object)) }
                return (.element(index), index, .failure(RecordProblem(key: nil, problem: "element is not a JSON object")))
            }
        }
        var records = [(DataError.Location, Int, Result<[String: Any], RecordProblem>)]()
        var lineNumber = 0
        var start = 0
        while start <= bytes.count {
            let end = bytes[start...].firstIndex(of: 0x0A) ?? bytes.count
            lineNumber += 1
            var lineBytes = bytes[start..<end]
            if lineBytes.last == 0x0D { lineBytes = lineBytes.dropLast() }
            start = end + 1
            if lineBytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { continue }
            guard String(bytes: lineBytes, encoding: .utf8) != nil else {
                records.append((.line(lineNumber), lineNumber, .failure(RecordProblem(key: nil, problem: "invalid UTF-8"))))
                continue
            }
            let parsed: Any
            do { parsed = try JSONSerialization.jsonObject(with: Data(lineBytes), options: [.fragmentsAllowed]) } catch {
                records.append((.line(lineNumber), lineNumber,
                                .failure(RecordProblem(key: nil, problem: "malformed JSON: \(shortReason(error))"))))
                continue
            }
            guard let object = parsed as? [String: Any] else {
                records.append((.line(lineNumber), lineNumber, .failure(RecordProblem(key: nil, problem: "line is not a JSON object"))))
                continue
            }
            records.append((.line(lineNumber), lineNumber, .success(object)))
        }
        return records
    }

    private static func shortReason(_ error: Error) -> String {
        let nsError = error as NSError
        if let detail = nsError.userInfo[NSDebugDescriptionErrorKey] as? String { return detail }
        return nsError.localizedDescription
    }

    // MARK: - Format detection

    static func detectFormat(_ record: [String: Any], keys: DatasetKeys) throws -> DatasetFormat {
        if record[keys.chosen] != nil || record[keys.rejected] != nil {
            if let prompt = record[keys.prompt] {
                return prompt is String ? .standard : .conversational
            }
            return record[keys.chosen] is String ? .standardImplicitPrompt : .implicitPrompt
        }
        if record[keys.messages] != nil { return .messages }
        if let prompt = record[keys.prompt], record[keys.completion] != nil {
            return prompt is String ? .promptCompletion : .conversationalPromptCompletion
        }
        let found = record.keys.sorted().joined(separator: ", ")
        throw RecordProblem(key: nil, problem: "unrecognised record (keys: \(found)); expected '\(keys.prompt)'/'\(keys.chosen)'/"
            + "'\(keys.rejected)' (preference) or 'prompt'/'completion' or 'messages' (SFT); "
            + "rename keys with --prompt-key/--chosen-key/--rejected-key")
    }

    // MARK: - Field access

    private static func string(_ record: [String: Any], _ key: String) throws -> String {
        guard let value = record[key] else { throw RecordProblem(key: key, problem: "missing") }
        guard let text = value as? String else {
            throw RecordProblem(key: key, problem: "wrong type: expected a string, found \(typeName(value))")
        }
        guard !text.isEmpty else { throw RecordProblem(key: key, problem: "empty string") }
        return text
    }

    private static func messages(_ record: [String: Any], _ key: String) throws -> [ChatMessage] {
        guard let value = record[key] else { throw RecordProblem(key: key, problem: "missing") }
        guard let list = value as? [Any] else {
            throw RecordProblem(key: key, problem: "wrong type: expected a list of {\"role\", \"content\"} messages, found \(typeName(value))")
        }
        guard !list.isEmpty else { throw RecordProblem(key: key, problem: "empty message list") }
        return try list.enumerated().map { index, item in
            guard let message = item as? [String: Any] else {
                throw RecordProblem(key: "\(key)[\(index)]", problem: "wrong type: expected a {\"role\", \"content\"} object, found \(typeName(item))")
            }
            let role = try string(message, "role")
            guard let content = message["content"] else {
                throw RecordProblem(key: "\(key)[\(index)].content", problem: "missing")
            }
            guard let text = content as? String else {
                throw RecordProblem(key: "\(key)[\(index)].content", problem: "wrong type: expected a string, found \(typeName(content))")
            }
            if text.isEmpty && role == "assistant" {
                throw RecordProblem(key: "\(key)[\(index)].content", problem: "empty string")
            }
            return ChatMessage(role: role, content: text)
        }
    }

    private static func typeName(_ value: Any) -> String {
        switch value {
        case is NSNull: return "null"
        case is String: return "a string"
        case is [Any]: return "a list"
        case is [String: Any]: return "an object"
        case is NSNumber, is Bool, is Int, is Double: return "a number or boolean"
        default: return "\(type(of: value))"
        }
    }

    // MARK: - Records to examples

    private static func preferenceExample(_ record: [String: Any], format: DatasetFormat, keys: DatasetKeys) throws -> PreferenceExample {
        switch format {
        case .standard:
            return .standard(prompt: try string(record, keys.prompt), chosen: try string(record, keys.chosen),
                             rejected: try string(record, keys.rejected))
        case .conversational:
            let prompt = try messages(record, keys.prompt)
            let chosen = try messages(record, keys.chosen), rejected = try messages(record, keys.rejected)
            try checkCompletionTurns(chosen, key: keys.chosen, offset: 0)
            try checkCompletionTurns(rejected, key: keys.rejected, offset: 0)
            return .conversational(prompt: prompt, chosen: chosen, rejected: rejected)
        case .implicitPrompt:
            let chosen = try messages(record, keys.chosen)
            let rejected = try messages(record, keys.rejected)
            guard let example = PreferenceExample.extractingPrompt(chosen: chosen, rejected: rejected),
                  case .conversational(let prompt, let chosenTurns, let rejectedTurns) = example else {
                throw RecordProblem(key: keys.chosen, problem: "chosen and rejected must share leading prompt messages and then differ")
            }
            try checkCompletionTurns(chosenTurns, key: keys.chosen, offset: prompt.count)
            try checkCompletionTurns(rejectedTurns, key: keys.rejected, offset: prompt.count)
            return example
        case .standardImplicitPrompt:
            let chosen = try string(record, keys.chosen)
            let rejected = try string(record, keys.rejected)
            guard let example = PreferenceExample.extractingPrompt(chosen: chosen, rejected: rejected) else {
                throw RecordProblem(key: keys.chosen, problem: "chosen and rejected must share a leading prompt and then differ")
            }
            return example
        default:
            throw RecordProblem(key: nil, problem: "not a preference record")
        }
    }

    /// Chosen and rejected are what the model learns to say, so their first and last turns must be
    /// the assistant's: TRL would train on a user turn there without a word. `offset` counts the turns
    /// before the completion in the record's list (the shared prompt of an implicit-prompt record).
    private static func checkCompletionTurns(_ turns: [ChatMessage], key: String, offset: Int) throws {
        for index in Set([0, turns.count - 1]).sorted() where turns[index].role != "assistant" {
            throw RecordProblem(key: "\(key)[\(offset + index)].role", problem: "role '\(turns[index].role)': the first and last "
                + "turns of chosen and rejected must be the assistant's (they are the reply the model learns); move other turns into the prompt")
        }
    }

    private static func supervisedExample(_ record: [String: Any], format: DatasetFormat, keys: DatasetKeys) throws -> SupervisedExample {
        switch format {
        case .promptCompletion:
            return .promptCompletion(prompt: try string(record, keys.prompt), completion: try string(record, keys.completion))
        case .conversationalPromptCompletion:
            return .conversationalPromptCompletion(prompt: try messages(record, keys.prompt),
                                                   completion: try messages(record, keys.completion))
        case .messages:
            let list = try messages(record, keys.messages)
            guard list.contains(where: { $0.role == "assistant" }) else {
                throw RecordProblem(key: keys.messages, problem: "no assistant message to learn from")
            }
            return .messages(list)
        default:
            throw RecordProblem(key: nil, problem: "not a supervised record")
        }
    }
}
