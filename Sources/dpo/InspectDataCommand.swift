import ArgumentParser
import Foundation
import Preference
import Tokenization

/// `dpo inspect-data`: one example as the trainer sees it (tokens, ids, completion mask, truncation, drops).
struct InspectDataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect-data",
        abstract: "Show an example's tokens, ids and completion mask for chosen and rejected, with truncation and drop reasons.")

    @Option(help: "A model directory (its tokenizer files are used).")
    var model: String?

    @Option(help: "A tokenizer.json file, a directory holding one, or 'byte' (instead of --model).")
    var tokenizer: String?

    @Option(help: "The dataset file (JSON Lines or a JSON array).")
    var data: String

    @Option(help: "Which valid example to show (0-based).")
    var index = 0

    @Option(help: "chatml, llama3, none or a .jinja file (default: the model's chat_template.jinja, else tokenizer_config.json).")
    var chatTemplate: String?

    @Option(help: "Largest prompt + completion length in tokens.")
    var maxLength = 1024

    @Option(help: "Largest prompt length in tokens.")
    var maxPromptLength = 512

    @Option(help: "keep_start or keep_end: which end of a long prompt survives.")
    var truncation = "keep_end"

    @Option(help: "Key of the prompt field.") var promptKey = "prompt"
    @Option(help: "Key of the chosen field.") var chosenKey = "chosen"
    @Option(help: "Key of the rejected field.") var rejectedKey = "rejected"
    @Flag(help: "Skip invalid records instead of failing.") var skipInvalid = false
    @Flag(help: "Instead of one example: load and encode the whole file and print counts, lengths and timings.")
    var summary = false
    @Option(help: "With --summary: pairs per batch for the batching timing.") var batchSize = 4

    func run() throws {
        guard (tokenizer == nil) != (model == nil) else {
            throw ValidationError("give exactly one of --model DIR and --tokenizer FILE|DIR|byte")
        }
        guard let truncationMode = TruncationMode(rawValue: truncation) else {
            throw ValidationError("--truncation must be keep_start or keep_end")
        }
        var template: ChatTemplate?
        if let chatTemplate {
            do { template = try ChatTemplate.named(chatTemplate) } catch { throw ValidationError("\(error)") }
        }
        let loaded = try loadTokenizer(from: URL(fileURLWithPath: tokenizer ?? model!))
        let options = EncodingOptions(maxLength: maxLength, maxPromptLength: maxPromptLength,
                                      truncation: truncationMode, chatTemplate: template)
        let readOptions = DatasetReadOptions(
            keys: DatasetKeys(prompt: promptKey, chosen: chosenKey, rejected: rejectedKey), skipInvalid: skipInvalid)
        if summary {
            for line in try DatasetSummary.describe(file: URL(fileURLWithPath: data), tokenizer: loaded, options: options,
                                                    readOptions: readOptions, batchSize: batchSize) {
                print(line)
            }
            return
        }
        for line in try ExampleInspection.describe(file: URL(fileURLWithPath: data), index: index, tokenizer: loaded,
                                                   options: options, readOptions: readOptions) {
            print(line)
        }
    }
}
