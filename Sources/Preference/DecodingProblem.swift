import Foundation

extension FileProblem {
    /// A `Decodable` failure in one line by JSON key (`key 'files': expected an object, found a
    /// number`, `key 'format_version' is missing`, `not valid JSON: ...`), instead of Swift's dump
    /// (`DecodingError.keyNotFound: ... CodingKeys(stringValue: ...)`).
    /// With the `bytes` decoded, text that is not JSON is placed: `not valid JSON at line 3,
    /// column 3 (invalid value)` (JSONDecoder itself says only "not valid JSON").
    public static func decoding(_ error: DecodingError, in bytes: [UInt8]? = nil) -> String {
        switch error {
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty {
                if let bytes, let syntax = jsonSyntax(of: bytes) { return syntax }
                return "not valid JSON" + ((context.underlyingError).map { ": " + cause(of: $0) } ?? "")
            }
            return "key '\(keyPath(context.codingPath))': invalid value (\(context.debugDescription))"
        case .keyNotFound(let key, let context):
            return "key '\(keyPath(context.codingPath + [key]))' is missing"
        case .typeMismatch(let type, let context):
            return place(context) + "expected \(jsonKind(type))" + found(context.debugDescription)
        case .valueNotFound(let type, let context):
            return place(context) + "expected \(jsonKind(type)), found null"
        @unknown default:
            return "\(error)"
        }
    }

    /// Where and why `bytes` are not JSON: `not valid JSON at line L, column C (what is wrong)`,
    /// lines and columns counted from 1 (columns in characters); nil when they parse.
    public static func jsonSyntax(of bytes: [UInt8]) -> String? {
        guard !bytes.isEmpty else { return "not valid JSON (the file is empty)" }
        do {
            _ = try JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])
            return nil
        } catch {
            // Foundation: "Invalid value around character 17.", "Unexpected end of file during JSON parse."
            var text = ((error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String) ?? ""
            var offset: Int?
            if let range = text.range(of: #" around character \d+"#, options: .regularExpression) {
                offset = Int(text[range].dropFirst(" around character ".count))
                text.removeSubrange(range)
            }
            if text.hasPrefix("Unexpected end of file") {
                offset = bytes.count
                text = "the file ends in the middle of a value"
            }
            text = text.trimmingCharacters(in: CharacterSet(charactersIn: ". "))
            let what = text.isEmpty ? "" : " (" + text.prefix(1).lowercased() + text.dropFirst() + ")"
            guard let offset, offset <= bytes.count else { return "not valid JSON" + what }
            let lineStart = bytes[..<offset].lastIndex(of: 0x0A).map { $0 + 1 } ?? 0
            let line = bytes[..<offset].reduce(1) { $0 + ($1 == 0x0A ? 1 : 0) }
            let column = String(decoding: bytes[lineStart..<offset], as: UTF8.self).count + 1
            return "not valid JSON at line \(line), column \(column)" + what
        }
    }

    /// `files.model.safetensors.bytes`, `[2]` for array positions.
    static func keyPath(_ path: [CodingKey]) -> String {
        path.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".").replacingOccurrences(of: ".[", with: "[")
    }

    private static func place(_ context: DecodingError.Context) -> String {
        context.codingPath.isEmpty ? "" : "key '\(keyPath(context.codingPath))': "
    }

    /// The JSON kind a Swift type is read from.
    private static func jsonKind(_ type: Any.Type) -> String {
        let name = "\(type)"
        if name.hasPrefix("Dictionary") { return "an object" }
        if name.hasPrefix("Array") { return "a list" }
        if name == "String" { return "a string" }
        if name == "Bool" { return "true or false" }
        if ["Int", "Int64", "Int32", "UInt64", "UInt32", "Double", "Float"].contains(name) { return "a number" }
        return name
    }

    /// `, found a number` from Foundation's "... but found number instead.", when it says.
    private static func found(_ debugDescription: String) -> String {
        guard let range = debugDescription.range(of: #"but found (.+) instead"#, options: .regularExpression) else { return "" }
        var kind = String(debugDescription[range].dropFirst("but found ".count).dropLast(" instead".count))
        if !kind.hasPrefix("a ") && !kind.hasPrefix("an ") { kind = (kind.first.map { "aeiou".contains($0) } == true ? "an " : "a ") + kind }
        return ", found \(kind)"
    }
}
