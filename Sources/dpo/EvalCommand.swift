import ArgumentParser
import Distributed
import Foundation
import Llama
import Preference
import Training

/// `dpo eval`: the evaluation metrics of a model on preference pairs, as `dpo train` logs them.
struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Print one JSON object with the eval_ metrics of metrics.jsonl, eval_pairs and eval_dropped (and eval_skipped with --skip-invalid).",
        discussion: "Example: dpo eval --model runs/dpo/final --ref-model runs/sft --data test.jsonl --beta 0.1")

    @Option(help: ArgumentHelp("Policy model directory (required)", valueName: "DIR"))
    var model: String
    @Option(help: ArgumentHelp("Reference model directory (required unless --reference-free or --loss sft)", valueName: "DIR"))
    var refModel: String?
    @Flag(help: "Reference log-probs of 0 (default: off)")
    var referenceFree = false
    @Option(help: ArgumentHelp("Preference pairs (required)", valueName: "FILE"))
    var data: String
    @Option(help: ArgumentHelp("Loss whose value is reported", valueName: PreferenceLossKind.allCases.map(\.rawValue).joined(separator: "|")))
    var loss: String = "sigmoid"
    @Option(help: "Implicit reward temperature")
    var beta: Double = 0.1
    @Option(help: "Label smoothing for sigmoid/robust/exo_pair")
    var labelSmoothing: Double = 0
    @Option(help: "Weight of the chosen NLL added to the loss")
    var rpoAlpha: Double = 0
    @Flag(help: "Length-normalise sequence log-probs (default: off)")
    var averageLogps = false
    @Option(help: "Longest prompt+completion in tokens")
    var maxLength = 1024
    @Option(help: "Longest prompt in tokens")
    var maxPromptLength = 512
    @Option(help: "Pairs per forward pass")
    var batchPairs = 4
    @Option(help: ArgumentHelp("fp32 or fp16 weights", valueName: "fp32|fp16"))
    var precision: String = "fp32"

    @Option(help: ArgumentHelp("PEFT LoRA adapter applied to --model without merging; the reference is then the base unless --ref-model (default: none)", valueName: "DIR"))
    var adapter: String?

    @Flag(help: "Skip unreadable records of --data, counted as eval_skipped (default: false)")
    var skipInvalid = false

    @OptionGroup var dataShapeArguments: DataShapeArguments

    func run() throws {
        guard let kind = PreferenceLossKind(rawValue: loss) else {
            throw ValidationError("--loss \(loss): expected one of \(PreferenceLossKind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        var options = ScoringReports.EvalOptions(modelDirectory: model, dataFile: data)
        options.referenceModelDirectory = refModel
        options.loss = PreferenceLossOptions(
            kind: kind, beta: beta, labelSmoothing: labelSmoothing, rpoAlpha: rpoAlpha, referenceFree: referenceFree,
            averageLogps: averageLogps)
        options.maxLength = maxLength
        options.maxPromptLength = maxPromptLength
        options.batchPairs = batchPairs
        guard let parsedPrecision = Precision(rawValue: precision) else {
            throw ValidationError("--precision \(precision): expected fp32 or fp16")
        }
        options.precision = parsedPrecision
        options.dataShape = dataShapeArguments.dataShape
        options.skipInvalid = skipInvalid
        options.adapterDirectory = adapter
        // The ranks share the pairs and all-reduce the sums: every rank holds the line; rank 0 prints it.
        let (rank, line) = try World.run { ($0.rank, try ScoringReports.evaluate(options, communicator: $0)) }
        if rank == 0 { print(line) }
    }
}
