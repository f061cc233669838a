// MARK: - Formats and keys

/// The shape of the records of a dataset file, detected from its first record.
public enum DatasetFormat: String, CaseIterable, Sendable {
    /// `{"prompt": str, "chosen": str, "rejected": str}`
    case standard
    /// `{"prompt": [messages], "chosen": [messages], "rejected": [messages]}`
    case conversational
    /// `{"chosen": [messages], "rejected": [messages]}`, the prompt being the shared leading messages (MiniMind `dpo.jsonl`).
    case implicitPrompt = "implicit_prompt"
    /// `{"chosen": str, "rejected": str}`, the prompt being the shared leading text.
    case standardImplicitPrompt = "standard_implicit_prompt"
    /// `{"prompt": str, "completion": str}` (SFT)
    case promptCompletion = "prompt_completion"
    /// `{"prompt": [messages], "completion": [messages]}` (SFT)
    case conversationalPromptCompletion = "conversational_prompt_completion"
    /// `{"messages": [...]}` (SFT)
    case messages

    /// Whether records hold chat messages (rendered by the chat template).
    public var isConversational: Bool {
        switch self {
        case .conversational, .implicitPrompt, .conversationalPromptCompletion, .messages: return true
        case .standard, .standardImplicitPrompt, .promptCompletion: return false
        }
    }

    /// Whether records of this format are preference pairs (else supervised examples).
    public var isPreference: Bool {
        switch self {
        case .standard, .conversational, .implicitPrompt, .standardImplicitPrompt: return true
        case .promptCompletion, .conversationalPromptCompletion, .messages: return false
        }
    }
}

/// Key names of dataset records (`--prompt-key`, `--chosen-key`, `--rejected-key`).
public struct DatasetKeys: Equatable, Sendable {
    public var prompt = "prompt"
    public var chosen = "chosen"
    public var rejected = "rejected"
    public var completion = "completion"
    public var messages = "messages"
    public init(prompt: String = "prompt", chosen: String = "chosen", rejected: String = "rejected",
                completion: String = "completion", messages: String = "messages") {
        self.prompt = prompt
        self.chosen = chosen
        self.rejected = rejected
        self.completion = completion
        self.messages = messages
    }
}
