import Foundation
import Tokenization

// MARK: - Writing dataset files

/// Writes examples as JSON Lines in the formats `DatasetReader` reads.
public enum DatasetWriter {
    /// One JSON object per line.
    public static func jsonLines(_ examples: [PreferenceExample]) throws -> Data {
        try lines(examples.map { example -> [String: Any] in
            switch example {
            case .standard(let prompt, let chosen, let rejected):
                return ["prompt": prompt, "chosen": chosen, "rejected": rejected]
            case .conversational(let prompt, let chosen, let rejected):
                return ["prompt": messages(prompt), "chosen": messages(chosen), "rejected": messages(rejected)]
            }
        })
    }

    /// One JSON object per line.
    public static func jsonLines(_ examples: [SupervisedExample]) throws -> Data {
        try lines(examples.map { example -> [String: Any] in
            switch example {
            case .promptCompletion(let prompt, let completion):
                return ["prompt": prompt, "completion": completion]
            case .conversationalPromptCompletion(let prompt, let completion):
                return ["prompt": messages(prompt), "completion": messages(completion)]
            case .messages(let list):
                return ["messages": messages(list)]
            }
        })
    }

    private static func messages(_ list: [ChatMessage]) -> [[String: String]] {
        list.map { ["role": $0.role, "content": $0.content] }
    }

    private static func lines(_ objects: [[String: Any]]) throws -> Data {
        var data = Data()
        for object in objects {
            data += try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
            data.append(0x0A)
        }
        return data
    }
}
