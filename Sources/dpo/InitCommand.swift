import ArgumentParser
import Foundation
import Llama
import Training

/// `dpo init`: a randomly initialised model directory from a preset.
struct InitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Write a randomly initialised model directory (config.json, model.safetensors, tokenizer files) from a preset.",
        discussion: """
        Presets (all tied embeddings, rope_theta 1e6, rms_norm_eps 1e-5, 1024 positions): \
        tiny (hidden 64, 2 layers, 4/2 heads, ffn 176, vocab 259), small (128, 4 layers, 4/2 heads, ffn 352, vocab 512), \
        minimind (512, 8 layers, 8/2 heads, ffn 1408, vocab 6400). Weights ~ Normal(0, 0.02), norms 1, the pad row 0. \
        vocab_size is the preset's unless --vocab-size is given; it must hold every id of the tokenizer. With --tokenizer DIR \
        the bos/eos/pad ids come from that tokenizer. The result loads in transformers as LlamaForCausalLM.
        Example: dpo init --preset small --out runs/init
        """)

    @Option(help: ArgumentHelp("Model shape: \(LlamaPreset.allCases.map(\.rawValue).joined(separator: "|")).", valueName: "preset"))
    var preset: String = "tiny"

    @Option(help: ArgumentHelp("Output model directory (must be empty or missing unless --force).", valueName: "dir"))
    var out: String

    @Option(help: "Seed of the random weights.")
    var seed: UInt64 = 0

    @Option(help: ArgumentHelp("dtype of model.safetensors: fp32|fp16|bf16.", valueName: "dtype"))
    var dtype: String = "fp32"

    @Option(help: ArgumentHelp("'byte' (the built-in byte tokenizer) or a directory holding tokenizer.json to copy.", valueName: "byte|dir"))
    var tokenizer: String = "byte"

    @Option(help: ArgumentHelp("Override the preset's vocab_size (default: the preset's).", valueName: "n"))
    var vocabSize: Int?

    @Flag(help: "Write into a non-empty --out (its model and tokenizer files are replaced).")
    var force = false

    func validate() throws {
        guard LlamaPreset(rawValue: preset) != nil else {
            throw ValidationError("--preset \(preset): expected one of \(LlamaPreset.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard WeightDType(rawValue: dtype) != nil else {
            throw ValidationError("--dtype \(dtype): expected one of \(WeightDType.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        if let vocabSize, vocabSize <= 0 { throw ValidationError("--vocab-size must be positive, got \(vocabSize)") }
        if out.isEmpty { throw ValidationError("--out must name a directory") }
    }

    func run() throws {
        try RankZeroOnly.run(command: "init", write)
    }

    private func write() throws {
        var parameters = ModelInit.Parameters(config: LlamaPreset(rawValue: preset)!.config, outputDirectory: out)
        parameters.seed = seed
        parameters.dtype = WeightDType(rawValue: dtype)!
        parameters.tokenizer = ModelInit.TokenizerSource(argument: tokenizer)
        parameters.vocabularySize = vocabSize
        parameters.overwrite = force
        let summary = try ModelInit.write(parameters)
        let c = summary.config
        print("wrote \(summary.directory.path): \(preset), \(summary.parameterCount) parameters "
            + "(hidden \(c.hiddenSize), \(c.numHiddenLayers) layers, vocab \(c.vocabSize); tokenizer \(summary.tokenizerVocabularySize) ids), \(dtype)")
    }
}
