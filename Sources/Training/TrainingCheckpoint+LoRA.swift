import Foundation
import Llama

extension TrainingCheckpoint {
    /// The base model's `config.json`, kept beside a LoRA adapter under another name: a
    /// `config.json` would make transformers take the directory for a full model.
    public static let baseConfigFileName = "base_config.json"

    /// The PEFT adapter files (F32 adapters; `base_model_name_or_path` = the absolute --model
    /// directory, so `PeftModel.from_pretrained` and transformers find the base), the base
    /// config, and the model's chat template file when it has one.
    static func writeAdapter(
        into directory: URL, config: LlamaConfig, lora: LoRAConfig, adapters: [Float], parameters: TrainingParameters
    ) throws {
        let base = URL(fileURLWithPath: parameters.modelDirectory).standardizedFileURL
        try LoRAAdapterDirectory.save(adapters, layout: LoRALayout(model: config, lora: lora), config: lora, baseModel: base.path, to: directory)
        try config.save(to: directory.appendingPathComponent(baseConfigFileName))
        try copyChatTemplate(from: base, to: directory)
    }

    /// `chat_template.jinja` (transformers' separate template file), when the model has one.
    static func copyChatTemplate(from source: URL, to destination: URL) throws {
        let name = "chat_template.jinja"
        let from = source.appendingPathComponent(name), to = destination.appendingPathComponent(name)
        let manager = FileManager.default
        guard manager.fileExists(atPath: from.path), !manager.fileExists(atPath: to.path) else { return }
        try manager.copyItem(at: from, to: to)
    }
}
