import Foundation

extension FileProblem {
    /// A `Decodable` failure in one line by JSON key (`key 'files': expected an object, found a
    /// number`, `key 'format_version' is missing`, `not valid JSON: ...`), instead of Swift's dump
    /// (`DecodingError.keyNotFound: ... CodingKeys(stringValue: ...)`).
    public static func decoding(_ error: DecodingError) -> String {
        switch error {
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty {
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
