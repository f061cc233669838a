import Foundation
import Tokenization

// MARK: - Encoding options

/// Which end of a too-long prompt survives.
public enum TruncationMode: String, CaseIterable, Codable, Sendable {
    /// Keep the first `maxPromptLength` tokens.
    case keepStart = "keep_start"
    /// Keep the last `maxPromptLength` tokens (the end of the prompt next to the answer).
    case keepEnd = "keep_end"
}

/// Lengths and template used when turning examples into token rows.
public struct EncodingOptions: Sendable {
    /// Largest prompt + completion length in tokens (`--max-length`).
    public var maxLength: Int
    /// Largest prompt length in tokens (`--max-prompt-length`).
    public var maxPromptLength: Int
    /// How a too-long prompt is cut (`--truncation`).
    public var truncation: TruncationMode
    /// The chat template (`--chat-template`); nil = the model's own (`chat_template.jinja`, else `tokenizer_config.json`).
    public var chatTemplate: ChatTemplate?

    public init(maxLength: Int = 1024, maxPromptLength: Int = 512, truncation: TruncationMode = .keepEnd,
                chatTemplate: ChatTemplate? = nil) {
        self.maxLength = maxLength
        self.maxPromptLength = maxPromptLength
        self.truncation = truncation
        self.chatTemplate = chatTemplate
    }
}

// MARK: - Encoding errors

/// Why examples could not be encoded at all (a setup problem, not a bad example).
public enum EncodingError: Error, LocalizedError, CustomStringConvertible, Equatable {
    case noEOSToken
    case invalidLengths(maxLength: Int, maxPromptLength: Int)
    case templateNotPrefix(index: Int, template: String)
    case noChatTemplate
    /// The chat template refused or failed on an example (its `raise_exception` message, or an engine error
    /// naming the template's file and line).
    case templateFailed(index: Int, message: String)
    /// A conversational chosen or rejected that does not start with an assistant message.
    case completionNotAssistant(index: Int, role: String)

    public var description: String {
        switch self {
        case .noEOSToken:
            return "the tokenizer has no eos_token: set \"eos_token\" in tokenizer_config.json"
        case .invalidLengths(let maxLength, let maxPromptLength):
            return "--max-length (\(maxLength)) must be > 1 and --max-prompt-length (\(maxPromptLength)) must be >= 1"
        case .templateNotPrefix(let index, let template):
            return "example \(index): the \(template) rendering of the prompt is not a prefix of the rendering of prompt+completion"
        case .noChatTemplate:
            return ChatTemplateError.noTemplate.description
        case .templateFailed(let index, let message):
            return "example \(index): \(message)"
        case .completionNotAssistant(let index, let role):
            return "example \(index): chosen and rejected must start with an assistant message, one starts with role \(role)"
        }
    }

    public var errorDescription: String? { description }

    /// The example the error is about, when it is about one.
    public var exampleIndex: Int? {
        switch self {
        case .templateNotPrefix(let index, _), .templateFailed(let index, _), .completionNotAssistant(let index, _): return index
        case .noEOSToken, .invalidLengths, .noChatTemplate: return nil
        }
    }
}

// MARK: - Encoded sequences

/// One row before batching: tokens t[0..<n] and, per token, whether it is a completion token
/// (its log-prob counts). The model input is t[0..<n-1]; position p predicts t[p+1].
public struct EncodedSequence: Equatable, Sendable {
    public var tokens: [Int32]
    public var completionMask: [Bool]

    public init(tokens: [Int32], completionMask: [Bool]) {
        self.tokens = tokens
        self.completionMask = completionMask
    }

    /// prompt followed by completion, the completion masked in.
    public init(prompt: [Int32], completion: [Int32]) {
        tokens = prompt + completion
        completionMask = [Bool](repeating: false, count: prompt.count) + [Bool](repeating: true, count: completion.count)
    }

    /// Number of completion tokens that are predicted (not the first token of the row).
    public var scoredTokenCount: Int { completionMask.dropFirst().filter { $0 }.count }
}

// MARK: - Shared steps

/// The pieces both encoders need: EOS rule, prompt cut, completion cut.
struct EncodingRules {
    let tokenizer: any Tokenizer
    let options: EncodingOptions
    let eos: Int32

    init(tokenizer: any Tokenizer, options: EncodingOptions) throws {
        guard let eos = tokenizer.eosTokenId else { throw EncodingError.noEOSToken }
        guard options.maxLength > 1, options.maxPromptLength >= 1 else {
            throw EncodingError.invalidLengths(maxLength: options.maxLength, maxPromptLength: options.maxPromptLength)
        }
        self.tokenizer = tokenizer
        self.options = options
        self.eos = eos
    }

    /// `ids` + EOS, unless the ids already end with EOS followed only by whitespace tokens.
    func appendingEOSIfMissing(_ ids: [Int32]) -> [Int32] {
        var last = ids.count - 1
        while last >= 0 && ids[last] != eos && !tokenizer.isSpecialToken(ids[last])
            && tokenizer.decode([ids[last]]).allSatisfy(\.isWhitespace) {
            last -= 1
        }
        if last >= 0 && ids[last] == eos { return ids }
        return ids + [eos]
    }

    /// The prompt cut to `maxPromptLength` by the truncation mode.
    func truncatedPrompt(_ prompt: [Int32]) -> (ids: [Int32], truncated: Bool) {
        guard prompt.count > options.maxPromptLength else { return (prompt, false) }
        switch options.truncation {
        case .keepStart: return (Array(prompt.prefix(options.maxPromptLength)), true)
        case .keepEnd: return (Array(prompt.suffix(options.maxPromptLength)), true)
        }
    }

    /// The completion cut at its end to fit `maxLength` after a prompt of `promptCount` tokens.
    func truncatedCompletion(_ completion: [Int32], promptCount: Int) -> (ids: [Int32], truncated: Bool) {
        let budget = max(0, options.maxLength - promptCount)
        guard completion.count > budget else { return (completion, false) }
        return (Array(completion.prefix(budget)), true)
    }

    /// The text of `full` after `prefix`, or nil when `prefix` does not start it.
    static func remainder(of full: String, after prefix: String) -> String? {
        let fullBytes = Array(full.utf8)
        let prefixBytes = Array(prefix.utf8)
        guard fullBytes.count >= prefixBytes.count, fullBytes[..<prefixBytes.count].elementsEqual(prefixBytes) else { return nil }
        return String(decoding: fullBytes[prefixBytes.count...], as: UTF8.self)
    }
}
