import Foundation
import Tokenization

// MARK: - Encoded pairs

/// A preference pair as token ids, after truncation. Rows are prompt+chosen and prompt+rejected.
public struct EncodedPair: Equatable, Sendable {
    /// Position of the example in its dataset.
    public var index: Int
    public var prompt: [Int32]
    /// Chosen completion ids (EOS included unless cut by truncation).
    public var chosen: [Int32]
    public var rejected: [Int32]
    public var promptTruncated: Bool
    public var chosenTruncated: Bool
    public var rejectedTruncated: Bool

    public var chosenSequence: EncodedSequence { EncodedSequence(prompt: prompt, completion: chosen) }
    public var rejectedSequence: EncodedSequence { EncodedSequence(prompt: prompt, completion: rejected) }
    /// Length of the longer row (prompt + longer completion), for grouping by length.
    public var longestRowLength: Int { prompt.count + max(chosen.count, rejected.count) }
}

/// Why a pair was left out of training.
public enum DropReason: String, CaseIterable, Sendable {
    /// The prompt took the whole `maxLength` (possible when `maxPromptLength >= maxLength`):
    /// nothing of the completion survives truncation.
    case emptyChosenAfterTruncation = "chosen completion empty after truncation"
    case emptyRejectedAfterTruncation = "rejected completion empty after truncation"
}

/// The result of encoding one example.
public enum EncodingOutcome: Equatable, Sendable {
    case encoded(EncodedPair)
    case dropped(index: Int, reason: DropReason)
}

/// What happened while encoding a dataset, for the CLI to report at start.
public struct EncodingReport: Equatable, Sendable {
    public var encodedCount = 0
    /// Dropped pairs by reason.
    public var dropped: [DropReason: Int] = [:]
    public var truncatedPromptCount = 0
    public var truncatedCompletionCount = 0
    /// Examples whose prompt tokens differ from the leading tokens of the prompt+completion tokens.
    public var promptMismatchCount = 0
    /// The first such example (the one to warn about).
    public var firstPromptMismatchIndex: Int?

    public init() {}

    public var droppedCount: Int { dropped.values.reduce(0, +) }

    /// Lines for the CLI to print (empty when there is nothing to say).
    public var summaryLines: [String] {
        var lines = [String]()
        for reason in DropReason.allCases {
            if let count = dropped[reason], count > 0 { lines.append("dropped \(count) pair(s): \(reason.rawValue)") }
        }
        if truncatedPromptCount > 0 { lines.append("truncated \(truncatedPromptCount) prompt(s)") }
        if truncatedCompletionCount > 0 { lines.append("truncated \(truncatedCompletionCount) completion(s) (they keep no EOS)") }
        if let index = firstPromptMismatchIndex {
            lines.append("warning: the prompt tokens differ from the leading tokens of prompt+completion in "
                         + "\(promptMismatchCount) example(s), first at index \(index) (the tokenizer merges across "
                         + "the boundary, or the chat template renders the prompt alone differently; standard rows use "
                         + "the prompt and completion tokenized separately, conversational rows start the completion "
                         + "where the ids diverge, as TRL does)")
        }
        return lines
    }
}

// MARK: - Preference encoder

/// Turns preference examples into token ids by the conventions in docs/ARCHITECTURE.md:
/// standard examples are encoded without post-processor (no BOS) and get EOS appended; conversational
/// ones follow TRL (`ConversationalSplit`): the chat template's rendering, no EOS appended.
public struct PreferenceEncoder {
    public let tokenizer: any Tokenizer
    public let options: EncodingOptions
    /// The template in use: the override, else the recognised one.
    public let template: ChatTemplate
    private let rules: EncodingRules

    public init(tokenizer: any Tokenizer, options: EncodingOptions = EncodingOptions()) throws {
        self.tokenizer = tokenizer
        self.options = options
        template = options.chatTemplate ?? tokenizer.chatTemplate
        rules = try EncodingRules(tokenizer: tokenizer, options: options)
    }

    /// Encodes every example; returns the kept pairs (in dataset order) and the report.
    public func encode(_ examples: [PreferenceExample]) throws -> (pairs: [EncodedPair], report: EncodingReport) {
        var report = EncodingReport()
        var pairs = [EncodedPair]()
        pairs.reserveCapacity(examples.count)
        for (index, example) in examples.enumerated() {
            let (outcome, mismatch) = try encode(example, index: index)
            if mismatch {
                report.promptMismatchCount += 1
                if report.firstPromptMismatchIndex == nil { report.firstPromptMismatchIndex = index }
            }
            switch outcome {
            case .encoded(let pair):
                report.encodedCount += 1
                if pair.promptTruncated { report.truncatedPromptCount += 1 }
                if pair.chosenTruncated || pair.rejectedTruncated { report.truncatedCompletionCount += 1 }
                pairs.append(pair)
            case .dropped(_, let reason):
                report.dropped[reason, default: 0] += 1
            }
        }
        return (pairs, report)
    }

    /// Encodes one example. `promptMismatch` tells whether the prompt's tokens differ from the leading
    /// tokens of the prompt+chosen or prompt+rejected text encoded as a whole.
    public func encode(_ example: PreferenceExample, index: Int) throws -> (outcome: EncodingOutcome, promptMismatch: Bool) {
        let promptIds: [Int32], chosenIds: [Int32], rejectedIds: [Int32], mismatch: Bool
        switch example {
        case .standard(let promptText, let chosenText, let rejectedText):
            promptIds = tokenizer.encode(promptText)
            chosenIds = rules.appendingEOSIfMissing(tokenizer.encode(chosenText))
            rejectedIds = rules.appendingEOSIfMissing(tokenizer.encode(rejectedText))
            mismatch = !tokenizer.encode(promptText + chosenText).starts(with: promptIds)
                || !tokenizer.encode(promptText + rejectedText).starts(with: promptIds)
        case .conversational(let prompt, let chosen, let rejected):
            let split = try ConversationalSplit(prompt: prompt, completions: [chosen, rejected], template: template,
                                                tokenizer: tokenizer, index: index)
            (promptIds, chosenIds, rejectedIds, mismatch) = (split.prompt, split.completions[0], split.completions[1],
                                                              split.promptMismatch)
        }

        let prompt = rules.truncatedPrompt(promptIds)
        let chosen = rules.truncatedCompletion(chosenIds, promptCount: prompt.ids.count)
        let rejected = rules.truncatedCompletion(rejectedIds, promptCount: prompt.ids.count)
        if chosen.ids.isEmpty {
            return (.dropped(index: index, reason: .emptyChosenAfterTruncation), mismatch)
        }
        if rejected.ids.isEmpty {
            return (.dropped(index: index, reason: .emptyRejectedAfterTruncation), mismatch)
        }
        let pair = EncodedPair(index: index, prompt: prompt.ids, chosen: chosen.ids, rejected: rejected.ids,
                               promptTruncated: prompt.truncated, chosenTruncated: chosen.truncated,
                               rejectedTruncated: rejected.truncated)
        return (.encoded(pair), mismatch)
    }
}
