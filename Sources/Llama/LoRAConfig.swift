import Foundation

/// A LoRA setting the model cannot take (bad rank, unknown module, shape mismatch).
public struct LoRAError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The seven linear projections of a decoder layer a LoRA adapter can target, in the order
/// the adapter vector stores them (the model's own layout order).
public enum LoRAModule: String, CaseIterable, Codable, Sendable {
    case qProj = "q_proj", kProj = "k_proj", vProj = "v_proj", oProj = "o_proj"
    case gateProj = "gate_proj", upProj = "up_proj", downProj = "down_proj"

    /// The module's path inside a decoder layer, as Hugging Face names it.
    public var path: String {
        switch self {
        case .qProj, .kProj, .vProj, .oProj: return "self_attn." + rawValue
        case .gateProj, .upProj, .downProj: return "mlp." + rawValue
        }
    }

    /// `(in, out)` features of the base projection (its weight is `[out, in]`).
    public func features(_ c: LlamaConfig) -> (in: Int, out: Int) {
        switch self {
        case .qProj: return (c.hiddenSize, c.qDim)
        case .kProj, .vProj: return (c.hiddenSize, c.kvDim)
        case .oProj: return (c.qDim, c.hiddenSize)
        case .gateProj, .upProj: return (c.hiddenSize, c.intermediateSize)
        case .downProj: return (c.intermediateSize, c.hiddenSize)
        }
    }
}

/// The adapter's hyper-parameters, PEFT's `LoraConfig` subset swift-dpo implements:
/// scale `alpha / r` (no rsLoRA), no bias, no dropout (dropout > 0 is refused: it would make
/// the policy forward random, and PEFT's mask stream cannot be reproduced here).
public struct LoRAConfig: Codable, Equatable, Sendable {
    public var rank: Int
    public var alpha: Double
    public var dropout: Double
    /// Targeted modules, canonical order, no repeats.
    public var targets: [LoRAModule]

    public init(rank: Int, alpha: Double? = nil, dropout: Double = 0, targets: [LoRAModule] = LoRAModule.allCases) {
        self.rank = rank
        self.alpha = alpha ?? Double(2 * rank)
        self.dropout = dropout
        self.targets = LoRAModule.allCases.filter { targets.contains($0) }
    }

    /// `alpha / r`, the factor on the low-rank path.
    public var scale: Float { Float(alpha / Double(rank)) }

    /// Parses a comma list such as `q_proj,v_proj` (the `--lora-targets` and PEFT spelling).
    public static func parseTargets(_ list: String) throws -> [LoRAModule] {
        let names = list.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !names.isEmpty else { throw LoRAError("LoRA targets: an empty list; name at least one of \(Self.allNames)") }
        return try names.map { name in
            guard let module = LoRAModule(rawValue: name) else {
                throw LoRAError("LoRA targets: '\(name)' is not a module of this model; choose from \(Self.allNames)")
            }
            return module
        }
    }

    static var allNames: String { LoRAModule.allCases.map(\.rawValue).joined(separator: ",") }

    /// Refuses what training cannot do exactly: dropout > 0 (inference ignores dropout, so an
    /// adapter trained with it still loads for logps/eval/generate/merge).
    public func validateForTraining(_ c: LlamaConfig) throws {
        try validate(for: c)
        guard dropout == 0 else {
            throw LoRAError("LoRA dropout \(dropout) is not supported for training: only 0 (PEFT's default) is implemented, because a "
                + "random mask on the policy forward cannot match PEFT's; set --lora-dropout 0")
        }
    }

    /// Refuses settings this model cannot run, naming the value and what to do.
    public func validate(for c: LlamaConfig) throws {
        guard rank > 0 else { throw LoRAError("LoRA rank r must be > 0 (got \(rank)); r = 0 means full fine-tuning, without adapters") }
        guard alpha.isFinite, alpha > 0 else { throw LoRAError("LoRA alpha must be a positive number (got \(alpha))") }
        guard dropout.isFinite, dropout >= 0, dropout < 1 else { throw LoRAError("LoRA dropout must be in [0, 1) (got \(dropout))") }
        guard !targets.isEmpty else { throw LoRAError("LoRA targets: none; name at least one of \(Self.allNames)") }
        for module in targets {
            let f = module.features(c)
            guard rank <= min(f.in, f.out) else {
                throw LoRAError("LoRA rank \(rank) exceeds \(module.rawValue)'s smaller dimension \(min(f.in, f.out)) "
                    + "([\(f.out), \(f.in)]); choose r <= \(min(f.in, f.out)) or leave \(module.rawValue) out of the targets")
            }
        }
    }
}
