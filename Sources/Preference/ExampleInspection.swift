import Foundation
import Tokenization

// MARK: - One example as the trainer sees it

/// A dataset example rendered token by token with its completion mask: what `dpo inspect-data` prints.
public enum ExampleInspection {
    /// Lines describing example `index` of the file at `url` (preference or SFT data, detected).
    public static func describe(file url: URL, index: Int, tokenizer: any Tokenizer, options: EncodingOptions,
                                readOptions: DatasetReadOptions) throws -> [String] {
        let format = try DatasetReader.detectFormat(of: url, keys: readOptions.keys, skipInvalid: readOptions.skipInvalid)
        var lines = ["file: \(url.path)", "format: \(format.rawValue)",
                     options.templateSummary(tokenizer: tokenizer)]
        if format.isPreference {
            let dataset = try DatasetReader.readPreferences(from: url, options: readOptions)
            try checkIndex(index, count: dataset.examples.count, file: url.path)
            lines.append("example \(index) (line or element \(dataset.sourcePositions[index])); "
                         + "\(dataset.skipped.count) invalid record(s) skipped in the file")
            let encoder = try PreferenceEncoder(tokenizer: tokenizer, options: options)
            let outcome: EncodingOutcome, mismatch: Bool
            do { (outcome, mismatch) = try encoder.encode(dataset.examples[index], index: index) } catch {
                throw dataset.locating(error, example: index, encoding: options, tokenizer: tokenizer)
            }
            if mismatch {
                lines.append("warning: prompt tokens differ from the leading tokens of prompt+completion tokenized as one text")
            }
            switch outcome {
            case .dropped(_, let reason):
                lines.append("DROPPED: \(reason.rawValue) (max length \(options.maxLength), max prompt length \(options.maxPromptLength))")
            case .encoded(let pair):
                lines += try renderedLines(dataset.examples[index], pair: pair, tokenizer: tokenizer, options: options)
                lines.append("prompt: \(pair.prompt.count) tokens\(pair.promptTruncated ? " (truncated, \(options.truncation.rawValue))" : "")")
                lines += rowLines("chosen", pair.chosenSequence, truncated: pair.chosenTruncated, tokenizer: tokenizer)
                lines += rowLines("rejected", pair.rejectedSequence, truncated: pair.rejectedTruncated, tokenizer: tokenizer)
            }
        } else {
            let dataset = try DatasetReader.readSupervised(from: url, options: readOptions)
            try checkIndex(index, count: dataset.examples.count, file: url.path)
            lines.append("example \(index) (line or element \(dataset.sourcePositions[index]))")
            let encoder = try SupervisedEncoder(tokenizer: tokenizer, options: options)
            let encoded: (sequence: EncodedSequence, promptTruncated: Bool, completionTruncated: Bool)?
            do { encoded = try encoder.encode(dataset.examples[index], index: index) } catch {
                throw dataset.locating(error, example: index, encoding: options, tokenizer: tokenizer)
            }
            if let (sequence, promptTruncated, completionTruncated) = encoded {
                if promptTruncated { lines.append("prompt truncated (\(options.truncation.rawValue))") }
                lines += rowLines("sequence", sequence, truncated: completionTruncated, tokenizer: tokenizer)
            } else {
                lines.append("DROPPED: completion empty after truncation")
            }
        }
        return lines
    }

    /// For a conversational pair: the chat template's text of the prompt (with the generation prompt) and of
    /// prompt+chosen / prompt+rejected, and where the completion starts (the row's first scored token).
    static func renderedLines(_ example: PreferenceExample, pair: EncodedPair, tokenizer: any Tokenizer,
                              options: EncodingOptions) throws -> [String] {
        guard case .conversational(let prompt, let chosen, let rejected) = example else { return [] }
        let template = ChatTemplate.resolve(override: options.chatTemplate, tokenizer: tokenizer)
        let tokens = tokenizer.chatSpecialTokens
        var lines = ["rendered prompt (add_generation_prompt=True): "
                     + (try template.render(prompt, addGenerationPrompt: true, specialTokens: tokens)).debugDescription]
        for (name, completion, ids) in [("chosen", chosen, pair.chosen), ("rejected", rejected, pair.rejected)] {
            lines.append("rendered prompt+\(name): "
                         + (try template.render(prompt + completion, addGenerationPrompt: false, specialTokens: tokens)).debugDescription)
            lines.append("  the \(name) completion starts at token \(pair.prompt.count) of its row: "
                         + tokenizer.decode(ids).debugDescription)
        }
        return lines
    }

    private static func checkIndex(_ index: Int, count: Int, file: String) throws {
        guard index >= 0, index < count else {
            throw DataError(file: file, location: .file, problem: "--index \(index) is out of range (0..<\(count) valid examples)")
        }
    }

    /// One line per token: position, id, token text (escaped), and `C` when it is a scored completion token.
    static func rowLines(_ name: String, _ sequence: EncodedSequence, truncated: Bool, tokenizer: any Tokenizer) -> [String] {
        let completionCount = sequence.completionMask.filter { $0 }.count
        var lines = ["\(name): \(sequence.tokens.count) tokens, \(completionCount) in the completion mask"
                     + (truncated ? " (completion truncated: no EOS)" : "")]
        lines.append("  pos     id  mask  token")
        for (position, id) in sequence.tokens.enumerated() {
            let text = tokenizer.decode([id]).debugDescription
            let flag = sequence.completionMask[position] ? "C" : "."
            lines.append(String(format: "  %3d %6d    %@   ", position, Int(id), flag) + text)
        }
        return lines
    }
}
