import Foundation
import Tokenization

// MARK: - Supervised encoder

/// Turns SFT examples into single rows with the same conventions as `PreferenceEncoder`:
/// prompt+completion strings get no BOS and an EOS; messages are rendered by the chat template and the
/// loss covers every assistant turn with its end marker (each turn is the rest of the rendering after the
/// messages before it with the generation prompt).
public struct SupervisedEncoder {
    public let tokenizer: any Tokenizer
    public let options: EncodingOptions
    public let template: ChatTemplate
    private let rules: EncodingRules

    public init(tokenizer: any Tokenizer, options: EncodingOptions = EncodingOptions()) throws {
        self.tokenizer = tokenizer
        self.options = options
        template = options.chatTemplate ?? tokenizer.chatTemplate
        rules = try EncodingRules(tokenizer: tokenizer, options: options)
    }

    /// Encodes every example; nil entries of the result are dropped (completion empty after truncation),
    /// counted in the report under `emptyChosenAfterTruncation`.
    public func encode(_ examples: [SupervisedExample]) throws -> (sequences: [EncodedSequence], report: EncodingReport) {
        var report = EncodingReport()
        var sequences = [EncodedSequence]()
        for (index, example) in examples.enumerated() {
            guard let (sequence, promptTruncated, completionTruncated) = try encode(example, index: index) else {
                report.dropped[.emptyChosenAfterTruncation, default: 0] += 1
                continue
            }
            report.encodedCount += 1
            if promptTruncated { report.truncatedPromptCount += 1 }
            if completionTruncated { report.truncatedCompletionCount += 1 }
            sequences.append(sequence)
        }
        return (sequences, report)
    }

    /// One example as a row, or nil when no completion token survives truncation.
    public func encode(_ example: SupervisedExample, index: Int)
        throws -> (sequence: EncodedSequence, promptTruncated: Bool, completionTruncated: Bool)? {
        // Segments of text, each encoded on its own; `true` marks completion segments.
        var segments = [(text: String, isCompletion: Bool)]()
        switch example {
        case .promptCompletion(let prompt, let completion):
            segments = [(prompt, false), (completion, true)]
        case .conversationalPromptCompletion(let prompt, let completion):
            segments = try renderTurns(prompt + completion, firstCompletion: prompt.count, index: index)
        case .messages(let messages):
            let firstAssistant = messages.firstIndex { $0.role == "assistant" } ?? messages.count
            segments = try renderTurns(messages, firstCompletion: firstAssistant, index: index)
        }
        var promptIds = [Int32]()
        var rest = EncodedSequence(tokens: [], completionMask: [])
        for segment in segments {
            var ids = tokenizer.encode(segment.text)
            if segment.isCompletion { ids = rules.appendingEOSIfMissing(ids) }
            if rest.tokens.isEmpty && !segment.isCompletion {
                promptIds += ids
            } else {
                rest.tokens += ids
                rest.completionMask += [Bool](repeating: segment.isCompletion, count: ids.count)
            }
        }
        let prompt = rules.truncatedPrompt(promptIds)
        let budget = max(0, options.maxLength - prompt.ids.count)
        let completionTruncated = rest.tokens.count > budget
        let kept = min(budget, rest.tokens.count)
        let keptMask = Array(rest.completionMask.prefix(kept))
        guard keptMask.contains(true) else { return nil }
        let sequence = EncodedSequence(
            tokens: prompt.ids + rest.tokens.prefix(kept),
            completionMask: [Bool](repeating: false, count: prompt.ids.count) + keptMask)
        return (sequence, prompt.truncated, completionTruncated)
    }

    /// The template's text of `messages`; a template failure names the example.
    private func render(_ messages: [ChatMessage], addGenerationPrompt: Bool, specialTokens: [String: String],
                        index: Int) throws -> String {
        do {
            return try template.render(messages, addGenerationPrompt: addGenerationPrompt, specialTokens: specialTokens)
        } catch {
            throw EncodingError.templateFailed(index: index, message: "\(error)")
        }
    }

    /// Text segments of a conversation: everything up to each assistant turn (from `firstCompletion` on)
    /// rendered with the generation prompt is prompt text; the rest of the rendering with that turn is completion.
    private func renderTurns(_ messages: [ChatMessage], firstCompletion: Int, index: Int) throws -> [(text: String, isCompletion: Bool)] {
        guard template != .none else { throw EncodingError.noChatTemplate }
        let tokens = tokenizer.chatSpecialTokens
        var segments = [(text: String, isCompletion: Bool)]()
        var rendered = ""
        for turn in messages.indices where turn >= firstCompletion && messages[turn].role == "assistant" {
            let before = try render(Array(messages[..<turn]), addGenerationPrompt: true, specialTokens: tokens, index: index)
            let through = try render(Array(messages[...turn]), addGenerationPrompt: false, specialTokens: tokens, index: index)
            guard let promptPart = EncodingRules.remainder(of: before, after: rendered),
                  let completionPart = EncodingRules.remainder(of: through, after: before) else {
                throw EncodingError.templateNotPrefix(index: index, template: template.rawValue)
            }
            segments.append((promptPart, false))
            segments.append((completionPart, true))
            rendered = through
        }
        let all = try render(messages, addGenerationPrompt: false, specialTokens: tokens, index: index)
        if let tail = EncodingRules.remainder(of: all, after: rendered), !tail.isEmpty { segments.append((tail, false)) }
        return segments.filter { !$0.text.isEmpty }
    }
}
