import ArgumentParser
import Foundation
import Llama
import Training

/// `dpo merge-lora`: fold a PEFT LoRA adapter into its base model, as PEFT's `merge_and_unload`.
struct MergeLoRACommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge-lora",
        abstract: "Write base + LoRA adapter (W + alpha/r B A) as an ordinary Hugging Face model directory.",
        discussion: "Example: dpo merge-lora --model runs/sft --adapter runs/dpo-lora/final --out runs/dpo-merged")

    @Option(help: ArgumentHelp("Base model directory the adapter was trained on (required)", valueName: "DIR"))
    var model: String
    @Option(help: ArgumentHelp("PEFT adapter directory: adapter_config.json, adapter_model.safetensors (required)", valueName: "DIR"))
    var adapter: String
    @Option(help: ArgumentHelp("Output model directory (required)", valueName: "DIR"))
    var out: String
    @Option(help: ArgumentHelp("dtype of the written model.safetensors", valueName: "fp32|fp16|bf16"))
    var saveDtype: String = "fp32"

    func run() throws {
        guard let dtype = WeightDType(rawValue: saveDtype) else { throw ValidationError("--save-dtype \(saveDtype): expected fp32, fp16 or bf16") }
        try AdapterLoading.merge(baseDirectory: model, adapterDirectory: adapter, outputDirectory: out, dtype: dtype)
        print("merged \(adapter) into \(model): \(out)")
    }
}
