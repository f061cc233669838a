import Tokenization

// MARK: - Examples as read from files

/// One preference pair as read from a dataset file, before tokenization.
public enum PreferenceExample: Equatable, Sendable {
    /// Plain strings (TRL's standard format, and implicit-prompt strings after prompt extraction).
    case standard(prompt: String, chosen: String, rejected: String)
    /// Message lists (TRL's conversational format, and MiniMind's implicit-prompt `dpo.jsonl` after extraction).
    case conversational(prompt: [ChatMessage], chosen: [ChatMessage], rejected: [ChatMessage])
}

/// One supervised example for the `sft` stage, before tokenization.
public enum SupervisedExample: Equatable, Sendable {
    /// `{"prompt": str, "completion": str}`: loss on the completion.
    case promptCompletion(prompt: String, completion: String)
    /// `{"prompt": [messages], "completion": [messages]}`: loss on the completion turns.
    case conversationalPromptCompletion(prompt: [ChatMessage], completion: [ChatMessage])
    /// `{"messages": [...]}`: loss on every assistant turn.
    case messages([ChatMessage])
}

// MARK: - Implicit prompts

extension PreferenceExample {
    /// Splits chosen/rejected message lists into the shared leading messages (the prompt) and the rest,
    /// as TRL's `extract_prompt` does. Returns nil when nothing is shared or one list is a prefix of the other.
    static func extractingPrompt(chosen: [ChatMessage], rejected: [ChatMessage]) -> PreferenceExample? {
        var shared = 0
        while shared < min(chosen.count, rejected.count) && chosen[shared] == rejected[shared] { shared += 1 }
        guard shared > 0, shared < chosen.count, shared < rejected.count else { return nil }
        return .conversational(prompt: Array(chosen[..<shared]), chosen: Array(chosen[shared...]),
                               rejected: Array(rejected[shared...]))
    }

    /// The string form of `extract_prompt`: the common leading characters are the prompt; a space just
    /// before the first difference stays with the completions.
    static func extractingPrompt(chosen: String, rejected: String) -> PreferenceExample? {
        let chosenScalars = Array(chosen.unicodeScalars)
        let rejectedScalars = Array(rejected.unicodeScalars)
        var shared = 0
        while shared < min(chosenScalars.count, rejectedScalars.count) && chosenScalars[shared] == rejectedScalars[shared] {
            shared += 1
        }
        if shared > 0 && chosenScalars[shared - 1] == " " { shared -= 1 }
        guard shared > 0, shared < chosenScalars.count, shared < rejectedScalars.count else { return nil }
        func text(_ scalars: ArraySlice<Unicode.Scalar>) -> String {
            var view = String.UnicodeScalarView()
            view.append(contentsOf: scalars)
            return String(view)
        }
        return .standard(prompt: text(chosenScalars[..<shared]), chosen: text(chosenScalars[shared...]),
                         rejected: text(rejectedScalars[shared...]))
    }
}
