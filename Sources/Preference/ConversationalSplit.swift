import Foundation
import Tokenization

// MARK: - TRL's split of a conversation into prompt and completion ids

/// How TRL's DPOTrainer (1.16) tokenizes a conversational example, which this follows exactly:
///
///     prompt ids = tokenize(render(prompt messages, add_generation_prompt=True))
///     full ids   = tokenize(render(prompt + completion messages))          per completion
///     cut        = min over completions of the common prefix length of prompt ids and full ids
///     prompt     = prompt ids[..<cut];  completion = full ids[cut...]
///
/// No EOS is appended: the template's own end-of-turn text ends the completion. Where the prompt's ids
/// are not a prefix of a full rendering (a template that renders the prompt alone differently, or a
/// token merging across the boundary) the cut falls where they diverge and `promptMismatch` is set,
/// so the caller can warn once with the count.
struct ConversationalSplit {
    var prompt: [Int32]
    var completions: [[Int32]]
    var promptMismatch: Bool

    init(prompt messages: [ChatMessage], completions: [[ChatMessage]], template: ChatTemplate,
         tokenizer: any Tokenizer, index: Int) throws {
        guard template != .none else { throw EncodingError.noChatTemplate }
        // A completion is the assistant's reply; TRL would silently train on a user turn here.
        if let wrong = completions.first(where: { $0.first?.role != "assistant" }) {
            throw EncodingError.completionNotAssistant(index: index, role: wrong.first?.role ?? "none (empty)")
        }
        let specialTokens = tokenizer.chatSpecialTokens
        func render(_ list: [ChatMessage], _ generationPrompt: Bool) throws -> String {
            do {
                return try template.render(list, addGenerationPrompt: generationPrompt, specialTokens: specialTokens)
            } catch {
                throw EncodingError.templateFailed(index: index, message: "\(error)")
            }
        }
        let promptIds = tokenizer.encode(try render(messages, true))
        let fullIds = try completions.map { tokenizer.encode(try render(messages + $0, false)) }
        let cut = fullIds.map { Self.commonPrefixLength(promptIds, $0) }.min() ?? promptIds.count
        prompt = Array(promptIds[..<cut])
        self.completions = fullIds.map { Array($0[cut...]) }
        promptMismatch = cut < promptIds.count
    }

    static func commonPrefixLength(_ a: [Int32], _ b: [Int32]) -> Int {
        var length = 0
        while length < a.count && length < b.count && a[length] == b[length] { length += 1 }
        return length
    }
}
