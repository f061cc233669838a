import ArgumentParser
import Foundation
import Llama
import Training

/// `dpo generate`: continue a prompt, streaming the text to stdout as it is produced.
struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Generate a continuation of --prompt, printing text as tokens come.",
        discussion: """
        --temperature 0 is greedy; otherwise softmax(logits / T) cut to the top-p nucleus, sampled with --seed \
        (the same options give the same text). Generation stops at the model's EOS or after --max-new-tokens.
        Example: dpo generate --model runs/dpo/final --prompt "12+7=" --max-new-tokens 4
        """)

    @Option(help: ArgumentHelp("Model directory.", valueName: "dir"))
    var model: String

    @Option(help: ArgumentHelp("Prompt text.", valueName: "text"))
    var prompt: String

    @Flag(help: "Render the prompt as a user message with the model's chat template (generation prompt added).")
    var chat = false

    // .unconditional: `--temperature -1` is the value -1 (then refused by validate()), as `--temperature=-1` is,
    // not a missing value followed by an unknown flag -1.
    @Option(parsing: .unconditional, help: "Largest number of new tokens.")
    var maxNewTokens: Int = 128

    @Option(parsing: .unconditional, help: "Sampling temperature; 0 = greedy.")
    var temperature: Float = 0

    @Option(parsing: .unconditional, help: "Nucleus sampling: keep the most likely tokens up to this probability mass, in (0, 1].")
    var topP: Float = 1

    @Option(parsing: .unconditional, help: "Sampling seed.")
    var seed: UInt64 = 0

    @Option(help: ArgumentHelp("fp32|fp16: precision the model runs in.", valueName: "precision"))
    var precision: String = "fp32"

    @Option(help: ArgumentHelp("PEFT LoRA adapter applied to --model without merging (default: none).", valueName: "dir"))
    var adapter: String?

    func validate() throws {
        guard maxNewTokens > 0 else { throw ValidationError("--max-new-tokens must be positive, got \(maxNewTokens)") }
        guard temperature >= 0, temperature.isFinite else { throw ValidationError("--temperature must be >= 0 (0 = greedy), got \(temperature)") }
        guard topP > 0, topP <= 1 else { throw ValidationError("--top-p must be in (0, 1], got \(topP)") }
        guard Precision(rawValue: precision) != nil else { throw ValidationError("--precision \(precision): expected fp32 or fp16") }
    }

    func run() throws {
        try RankZeroOnly.run(command: "generate", generate)
    }

    private func generate() throws {
        var parameters = TextGeneration.Parameters(prompt: prompt)
        parameters.chat = chat
        parameters.maxNewTokens = maxNewTokens
        parameters.sampling = SamplingOptions(temperature: temperature, topP: topP, seed: seed)
        let (loaded, tokenizer) = try TaskScoring.loadModel(model, precision: Precision(rawValue: precision)!)
        if let adapter { try AdapterLoading.attach(adapter, to: loaded) }
        let result = try TextGeneration.generate(model: loaded, tokenizer: tokenizer, parameters) { piece in
            FileHandle.standardOutput.write(Data(piece.utf8))
        }
        FileHandle.standardOutput.write(Data("\n".utf8))
        if let limit = result.stoppedAtPositionLimit {
            // On stderr: stdout stays the generated text alone.
            FileHandle.standardError.write(Data(("note: generation stopped at the position limit: \(result.promptTokens) prompt + "
                + "\(result.generatedIds.count) generated tokens = \(limit.key) \(limit.tokens), before an end token or "
                + "--max-new-tokens \(maxNewTokens)\n").utf8))
        }
    }
}
