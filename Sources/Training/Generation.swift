import Foundation
import Llama
import Tokenization

// MARK: - Streaming text

/// Turns generated ids into text as they come, never splitting a character: a byte token
/// that ends in the middle of a UTF-8 sequence decodes to U+FFFD, so trailing replacement
/// characters are held back until the next token completes them (or `finish()` gives up).
///
/// Each push decodes the whole generation so far (generations are short; this keeps the
/// tokenizer's own decoding rules, e.g. byte-level merges, in charge).
public final class TextStream {
    private let tokenizer: any Tokenizer
    private let skipSpecialTokens: Bool
    private var ids: [Int32] = []
    /// Unicode scalars already handed out.
    private var emittedScalars = 0

    public init(tokenizer: any Tokenizer, skipSpecialTokens: Bool = true) {
        self.tokenizer = tokenizer
        self.skipSpecialTokens = skipSpecialTokens
    }

    /// The text that `id` completes (possibly empty).
    public func push(_ id: Int32) -> String {
        ids.append(id)
        return take(holdingBackIncomplete: true)
    }

    /// Whatever is still held back (an incomplete sequence at the very end stays U+FFFD).
    public func finish() -> String { take(holdingBackIncomplete: false) }

    /// Everything decoded so far.
    public var text: String { tokenizer.decode(ids, skipSpecialTokens: skipSpecialTokens) }

    private func take(holdingBackIncomplete: Bool) -> String {
        let scalars = Array(text.unicodeScalars)
        var end = scalars.count
        if holdingBackIncomplete {
            // At most 3 trailing U+FFFD can belong to one unfinished 4-byte sequence.
            var heldBack = 0
            while end > emittedScalars && heldBack < 3 && scalars[end - 1] == "\u{FFFD}" { end -= 1; heldBack += 1 }
        }
        guard end > emittedScalars else { return "" }
        var out = String.UnicodeScalarView()
        out.append(contentsOf: scalars[emittedScalars..<end])
        emittedScalars = end
        return String(out)
    }
}

// MARK: - Generating text

/// The library side of `dpo generate`: prompt text in, completion text out, streamed.
public enum TextGeneration {

    public struct Parameters: Sendable {
        public var prompt: String
        /// Render the prompt as one user message with the tokenizer's chat template (generation prompt added).
        public var chat = false
        public var maxNewTokens = 128
        public var sampling = SamplingOptions.greedy

        public init(prompt: String) { self.prompt = prompt }
    }

    public struct Result: Sendable {
        public var promptTokens: Int
        public var generatedIds: [Int32]
        public var text: String
        /// True when an end-of-sequence token ended the generation (not the token limit).
        public var stoppedAtEOS: Bool
        /// The model's position limit, when prompt plus new tokens reached it before an end token
        /// or `maxNewTokens` (the CLI says so: the text was cut, not finished).
        public var stoppedAtPositionLimit: RowPositionLimit?
    }

    /// The prompt's token ids as the model sees them.
    public static func promptIds(_ p: Parameters, tokenizer: any Tokenizer) throws -> [Int32] {
        var text = p.prompt
        if p.chat {
            guard tokenizer.chatTemplate != .none else {
                throw TextGenerationError.noChatTemplate
            }
            do {
                text = try tokenizer.renderChat([ChatMessage(role: "user", content: p.prompt)], addGenerationPrompt: true)
            } catch { throw TextGenerationError.invalidPrompt("\(error)") }
        }
        let ids = tokenizer.encode(text)
        guard !ids.isEmpty else { throw TextGenerationError.invalidPrompt("the prompt encodes to no tokens; give a non-empty --prompt") }
        return ids
    }

    /// Generates and calls `onText` with each piece of text as soon as it is complete.
    public static func generate(model: LlamaModel, tokenizer: any Tokenizer, _ p: Parameters,
                                onText: (String) -> Void) throws -> Result {
        guard p.maxNewTokens > 0 else { throw TextGenerationError.invalidOption("--max-new-tokens must be positive, got \(p.maxNewTokens)") }
        guard p.sampling.temperature >= 0, p.sampling.temperature.isFinite else {
            throw TextGenerationError.invalidOption("--temperature must be >= 0 (0 = greedy), got \(p.sampling.temperature)")
        }
        guard p.sampling.topP > 0, p.sampling.topP <= 1 else {
            throw TextGenerationError.invalidOption("--top-p must be in (0, 1], got \(p.sampling.topP)")
        }
        let ids = try promptIds(p, tokenizer: tokenizer)
        if let bad = ids.first(where: { Int($0) >= model.config.vocabSize }) {
            throw TextGenerationError.invalidPrompt(
                "the prompt encodes to id \(bad) but the model's vocab_size is \(model.config.vocabSize): the tokenizer does not belong to this model")
        }
        guard ids.count < model.config.maxPositionEmbeddings else {
            throw TextGenerationError.invalidPrompt(
                "the prompt is \(ids.count) tokens; the model holds at most \(model.config.maxPositionEmbeddings) positions")
        }
        // A sliding window or dynamic RoPE bounds the rows this model computes as transformers does.
        do { try model.config.checkRowLength(ids.count) } catch { throw TextGenerationError.invalidPrompt("\(error)") }
        var stopTokens = Set(model.config.eosTokenIds.map(Int32.init))
        if let eos = tokenizer.eosTokenId { stopTokens.insert(eos) }
        // With --chat the reply ends where the template ends a turn (<|im_end|>, <|eot_id|>, <end_of_turn>, ...).
        if p.chat, let endOfTurn = tokenizer.chatTemplate.endOfTurnId(tokenizer: tokenizer) { stopTokens.insert(endOfTurn) }
        let stream = TextStream(tokenizer: tokenizer)
        var nonFinitePosition: Int?
        let generated = withoutActuallyEscaping(onText) { onText in
            model.generate(prompt: ids, maxNewTokens: p.maxNewTokens, sampling: p.sampling, stopTokens: stopTokens,
                           onToken: { id in
                               let piece = stream.push(id)
                               if !piece.isEmpty { onText(piece) }
                               return true
                           }, onNonFiniteLogits: { nonFinitePosition = $0 })
        }
        let rest = stream.finish()
        if !rest.isEmpty { onText(rest) }
        if let position = nonFinitePosition { throw TextGenerationError.nonFiniteLogits(position: position, generated: generated.count) }
        let stoppedAtEOS = generated.last.map(stopTokens.contains) ?? false
        let limit = model.config.rowPositionLimit
        let atLimit = !stoppedAtEOS && generated.count < p.maxNewTokens && ids.count + generated.count >= limit.tokens
        return Result(promptTokens: ids.count, generatedIds: generated, text: stream.text,
                      stoppedAtEOS: stoppedAtEOS, stoppedAtPositionLimit: atLimit ? limit : nil)
    }
}

/// Why text could not be generated.
public enum TextGenerationError: Error, CustomStringConvertible, LocalizedError, Equatable {
    case invalidOption(String)
    case invalidPrompt(String)
    case noChatTemplate
    /// The model's logits at this position were NaN or infinite; `generated` tokens came before.
    case nonFiniteLogits(position: Int, generated: Int)

    public var description: String {
        switch self {
        case .invalidOption(let m): return "invalid option: \(m)"
        case .invalidPrompt(let m): return "prompt: \(m)"
        case .noChatTemplate:
            return "--chat: the model has no chat template (no chat_template.jinja, no chat_template in tokenizer_config.json); drop --chat to use the prompt as plain text"
        case .nonFiniteLogits(let position, let generated):
            return "numerical failure: the model's logits at position \(position) are not finite (NaN or infinity) after \(generated) generated token(s); "
                + "its weights overflow (float32 range exceeded). Use an earlier checkpoint, or with --precision fp16 try fp32"
        }
    }

    public var errorDescription: String? { description }
}
