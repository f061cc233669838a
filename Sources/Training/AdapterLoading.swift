import Foundation
import Llama
import Tokenization

/// `--adapter DIR` of `dpo logps`, `dpo eval`, `dpo generate` and `dpo merge-lora`: a PEFT
/// LoRA adapter applied to the base model without merging it.
public enum AdapterLoading {
    /// Attaches the adapter in `directory` to `model` (its base); errors name `--adapter` and the cause.
    public static func attach(_ directory: String, to model: LlamaModel) throws {
        let url = URL(fileURLWithPath: directory)
        guard LoRAAdapterDirectory.isAdapter(url) else {
            throw TrainingError.model("--adapter \(directory): no \(LoRAAdapterDirectory.configFileName) (not a PEFT adapter directory)")
        }
        do {
            let loaded = try LoRAAdapterDirectory.load(url, model: model.config)
            let adapters = try LoRAAdapters(model: model.config, config: loaded.config)
            loaded.values.withUnsafeBufferPointer { adapters.load($0) }
            model.attach(adapters)
        } catch let error as TrainingError {
            throw error
        } catch {
            throw TrainingError.model("--adapter \(directory): \(error)")
        }
    }

    /// `dpo merge-lora`: base + adapter folded into an ordinary model directory (float32 sums,
    /// saved in `dtype`), with the base's tokenizer files and chat template.
    public static func merge(baseDirectory: String, adapterDirectory: String, outputDirectory: String, dtype: WeightDType) throws {
        let (config, weights) = try TrainingInputs.loadModel(baseDirectory, flag: "--model")
        let model: LlamaModel
        do { model = try LlamaModel(config: config, precision: .fp32, trainable: false) } catch {
            throw TrainingError.model("--model \(baseDirectory): \(error)")
        }
        weights.withUnsafeBufferPointer { model.loadWeights($0) }
        try attach(adapterDirectory, to: model)
        let out = URL(fileURLWithPath: outputDirectory)
        let base = URL(fileURLWithPath: baseDirectory)
        do {
            try ModelDirectory.save(config: config, weights: model.mergedWeights(), to: out, dtype: dtype)
            try TokenizerFiles.copy(from: base, to: out)
            try TrainingCheckpoint.copyChatTemplate(from: base, to: out)
        } catch { throw TrainingError.output("--out \(outputDirectory): \(error)") }
    }
}
