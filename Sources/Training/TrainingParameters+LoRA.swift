import Foundation
import Llama

// The LoRA options of `dpo train`: `--lora-r N` > 0 trains low-rank adapters on a frozen base
// (the reference is the base itself unless --ref-model), `--adapter DIR` continues an adapter.

extension TrainingParameters {
    /// The adapter settings of this run (nil: full fine-tuning). With `--adapter`, the resolved
    /// parameters carry the adapter's own r, alpha, dropout and targets.
    public var loraConfig: LoRAConfig? {
        guard let rank = loraRank, rank > 0 else { return nil }
        return LoRAConfig(rank: rank, alpha: loraAlpha, dropout: loraDropout ?? 0, targets: loraTargets ?? LoRAModule.allCases)
    }

    func validateLoRA() throws {
        if let rank = loraRank, rank < 0 {
            throw TrainingError.invalidOption("--lora-r must be >= 0 (0 = full fine-tuning), got \(rank)")
        }
        let adapted = (loraRank ?? 0) > 0 || adapterDirectory != nil
        for (flag, given) in [("--lora-alpha", loraAlpha != nil), ("--lora-dropout", loraDropout != nil), ("--lora-targets", loraTargets != nil)]
        where given && !adapted {
            throw TrainingError.invalidOption("\(flag) needs --lora-r > 0 (LoRA); without it the run is full fine-tuning")
        }
        if adapted && zero != 0 {
            throw TrainingError.invalidOption(
                "--zero \(zero) shards the optimizer state of full fine-tuning; with LoRA that state is the adapters' (a few MB), "
                    + "so there is nothing to shard: use --zero 0 with --lora-r/--adapter")
        }
        if let alpha = loraAlpha, !(alpha > 0) { throw TrainingError.invalidOption("--lora-alpha must be > 0, got \(alpha)") }
        if let dropout = loraDropout, dropout != 0 {
            throw TrainingError.invalidOption(
                "--lora-dropout \(dropout): only 0 is supported (PEFT's default); a random dropout mask on the policy forward "
                    + "cannot be reproduced exactly, so it is refused rather than approximated")
        }
    }

    /// The LoRA rows of the option table (TrainingParameters+Options.swift), parsed by its value parsers.
    static let loraOptions: [Option] = [
        // Stored as nil when given the default (0, 0, all seven): one spelling per setting.
        Option(name: "lora-r", valueName: "N", defaultValue: "0",
               help: "LoRA rank: train rank-N adapters on the frozen base (the reference is the base with adapters off); 0 = full fine-tuning")
            { let r = try int("lora-r", $1); $0.loraRank = r == 0 ? nil : r },
        Option(name: "lora-alpha", valueName: "A", defaultValue: "the rank doubled (2 x --lora-r)", help: "LoRA alpha (the adapter path is scaled by alpha/r)")
            { $0.loraAlpha = try double("lora-alpha", $1) },
        Option(name: "lora-dropout", valueName: "P", defaultValue: "0", help: "LoRA dropout (only 0 is supported)")
            { let p = try double("lora-dropout", $1); $0.loraDropout = p == 0 ? nil : p },
        Option(name: "lora-targets", valueName: "LIST", defaultValue: LoRAModule.allCases.map(\.rawValue).joined(separator: ","),
               help: "Comma list of the projections that get adapters")
            { parameters, value in
                do {
                    let targets = LoRAConfig(rank: 1, targets: try LoRAConfig.parseTargets(value)).targets
                    parameters.loraTargets = targets == LoRAModule.allCases ? nil : targets
                } catch {
                    throw TrainingError.invalidOption("--lora-targets: \(error)")
                }
            },
        Option(name: "adapter", valueName: "DIR", defaultValue: "none",
               help: "Continue training this PEFT LoRA adapter directory (adapter_config.json, adapter_model.safetensors) on --model")
            { $0.adapterDirectory = $1 },
    ]
}
