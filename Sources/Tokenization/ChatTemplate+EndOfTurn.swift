import Foundation

// MARK: - Where a rendered turn ends

extension ChatTemplate {
    /// The special token the template writes right after an assistant reply (`<|im_end|>`, `<|eot_id|>`,
    /// `<end_of_turn>`, `<|end|>`, `</s>`), found by rendering a probe conversation and tokenizing what
    /// follows the reply; nil when the template writes no special token there (or refuses the probe).
    public func endOfTurnId(tokenizer: any Tokenizer) -> Int32? {
        let reply = "PROBE-REPLY-7f3a"
        let messages = [ChatMessage(role: "user", content: "PROBE-QUESTION-7f3a"), ChatMessage(role: "assistant", content: reply)]
        guard let text = try? render(messages, addGenerationPrompt: false, specialTokens: tokenizer.chatSpecialTokens),
              let range = text.range(of: reply, options: .backwards) else { return nil }
        let after = tokenizer.encode(String(text[range.upperBound...]))
        return after.first { tokenizer.isSpecialToken($0) }
    }
}
