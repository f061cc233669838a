import ArgumentParser
import Foundation
import Llama
import Training

/// `dpo logps`: the sequence log-probs a model gives each pair's chosen and rejected
/// completions, encoded exactly as `dpo train` encodes them.
struct LogpsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logps",
        abstract: "Print one JSON object per pair: chosen/rejected log-probs (float32 sums over completion tokens, EOS included).",
        discussion: """
        Output, in input order: {"index": i, "chosen_logps": x, "rejected_logps": y, "chosen_tokens": n, "rejected_tokens": m}, \
        or {"index": i, "dropped": "reason"} for a pair that cannot be encoded. No truncation unless --max-length is given.
        """)

    @Option(help: ArgumentHelp("Model directory (config.json, model.safetensors, tokenizer.json) (required)", valueName: "DIR"))
    var model: String
    @Option(help: ArgumentHelp("Preference pairs, JSONL or JSON array (required)", valueName: "FILE"))
    var data: String
    @Flag(help: "Print means over completion tokens instead of sums (default: sums)")
    var averageLogps = false
    @Option(help: ArgumentHelp("Truncate prompt+completion to N tokens as dpo train does (default: no truncation)", valueName: "N"))
    var maxLength: Int?
    @Option(help: ArgumentHelp("Truncate prompts to N tokens (default: --max-length, i.e. no truncation)", valueName: "N"))
    var maxPromptLength: Int?
    @Option(help: ArgumentHelp("Pairs scored per forward pass", valueName: "N"))
    var batchPairs = 4
    @Option(help: ArgumentHelp("fp32 or fp16 weights (log-softmax is float32 either way)", valueName: "fp32|fp16"))
    var precision: String = "fp32"

    @Option(help: ArgumentHelp("PEFT LoRA adapter applied to --model without merging (default: none)", valueName: "DIR"))
    var adapter: String?

    @OptionGroup var dataShapeArguments: DataShapeArguments

    func run() throws {
        try RankZeroOnly.run(command: "logps", score)
    }

    private func score() throws {
        var options = ScoringReports.LogpsOptions(modelDirectory: model, dataFile: data)
        options.averageLogps = averageLogps
        options.maxLength = maxLength
        options.maxPromptLength = maxPromptLength
        options.batchPairs = batchPairs
        guard let parsedPrecision = Precision(rawValue: precision) else {
            throw ValidationError("--precision \(precision): expected fp32 or fp16")
        }
        options.precision = parsedPrecision
        options.dataShape = dataShapeArguments.dataShape
        options.adapterDirectory = adapter
        for line in try ScoringReports.logps(options) { print(line) }
    }
}
