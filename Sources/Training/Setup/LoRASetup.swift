import Foundation
import Llama

/// The adapters of a LoRA run, settled before anything is written: `--adapter`'s own settings
/// (checked against any --lora-* flags given) or the flags', and the adapter values to start from.
enum LoRASetup {
    struct Start {
        let config: LoRAConfig
        /// Adapter values [LoRALayout.totalCount]: PEFT's initialisation, or the `--adapter` file's.
        let initial: [Float]
    }

    /// nil for full fine-tuning. With `--adapter`, `p`'s LoRA fields become the adapter's, so
    /// `train_config.json` and the checkpoints record what actually trains.
    static func resolve(_ p: inout TrainingParameters, model: LlamaConfig, events: TrainingEvents) throws -> Start? {
        if let directory = p.adapterDirectory {
            let loaded: (config: LoRAConfig, values: [Float], baseModel: String?)
            do { loaded = try LoRAAdapterDirectory.load(URL(fileURLWithPath: directory), model: model) } catch {
                throw TrainingError.model("--adapter \(directory): \(error)")
            }
            let c = loaded.config
            var conflicts: [String] = []
            if let r = p.loraRank, r != c.rank { conflicts.append("--lora-r \(r) vs r \(c.rank)") }
            if let alpha = p.loraAlpha, alpha != c.alpha { conflicts.append("--lora-alpha \(alpha) vs lora_alpha \(c.alpha)") }
            if let targets = p.loraTargets, LoRAConfig(rank: 1, targets: targets).targets != c.targets {
                conflicts.append("--lora-targets \(targets.map(\.rawValue).joined(separator: ",")) vs target_modules "
                    + c.targets.map(\.rawValue).joined(separator: ","))
            }
            guard conflicts.isEmpty else {
                throw TrainingError.invalidOption("--adapter \(directory) was trained with other settings (\(conflicts.joined(separator: "; "))); "
                    + "drop those flags to continue the adapter as it is")
            }
            do { try c.validateForTraining(model) } catch { throw TrainingError.model("--adapter \(directory): \(error)") }
            p.loraRank = c.rank
            p.loraAlpha = c.alpha
            p.loraDropout = c.dropout
            p.loraTargets = c.targets
            events.message("--adapter \(directory): continuing a LoRA adapter (r \(c.rank), alpha \(c.alpha), "
                + "\(c.targets.map(\.rawValue).joined(separator: ",")))")
            return Start(config: c, initial: loaded.values)
        }
        guard let c = p.loraConfig else { return nil }
        do { try c.validateForTraining(model) } catch { throw TrainingError.invalidOption("\(error) (--model \(p.modelDirectory))") }
        let layout = LoRALayout(model: model, lora: c)
        events.message("LoRA: r \(c.rank), alpha \(c.alpha), \(c.targets.map(\.rawValue).joined(separator: ",")): \(layout.totalCount) "
            + "trainable adapter parameters on a frozen base; reference = " + (p.referenceModelDirectory == nil ? "the base (adapters off)" : "--ref-model"))
        return Start(config: c, initial: LoRAAdapters.initialWeights(layout: layout, seed: UInt64(bitPattern: Int64(p.seed))))
    }
}
