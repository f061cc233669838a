import Foundation
import Llama
import Training

/// The settings of `dpo demo`: the task data, the model, and the SFT and DPO stages.
///
/// The defaults were tuned on this machine (see the README) so that DPO improves the
/// held-out task accuracy of the SFT model by a clear margin, with fixed seeds: the same
/// numbers on every run with the same rank count.
public struct DemoParameters: Sendable {
    /// Where everything goes: data/, init/, sft/, dpo/, plots/, demo_report.json, demo_report.md.
    public var outputDirectory: String
    /// Seed of the data, the initial weights and the data order.
    public var seed = 1

    // MARK: Model
    /// The model trained from scratch (the `tiny` preset: 109k parameters, byte tokenizer).
    public var config: LlamaConfig = LlamaPreset.tiny.config

    // MARK: SFT stage (the `sft` loss on answers of mixed quality)
    /// Supervised examples (drawn from the task's training prompts).
    public var sftExamples = 4000
    /// Share of those whose answer is wrong (off by 1 to 10).
    public var sftWrongShare = 0.3
    public var sftEpochs = 10
    public var sftLearningRate = 3e-3
    /// Pairs per optimizer step over all ranks.
    public var sftGlobalBatch = 32

    // MARK: DPO stage (chosen: the correct answer, rejected: a wrong one; reference: the SFT model)
    public var dpoPairs = 2000
    public var dpoEpochs = 4
    public var dpoLearningRate = 1e-3
    public var beta = 0.5
    /// Weight of the chosen NLL added to the DPO loss (TRL's rpo_alpha, the RPO objective; 0 = plain DPO).
    /// Plain DPO lowers the chosen answers' log-probs too (both fall, rejected faster) and barely moves
    /// greedy accuracy on this task; the NLL term keeps the chosen answers up (see `dpo experiment dpo-vs-sft`).
    public var rpoAlpha = 1.0
    public var dpoGlobalBatch = 32

    // MARK: Evaluation
    /// Held-out preference pairs (prompts never trained on) for the reward accuracy.
    public var heldOutPairs = 160

    public init(outputDirectory: String) {
        self.outputDirectory = outputDirectory
    }

    /// The full demo (a few minutes on 2 cores).
    public static func standard(outputDirectory: String) -> DemoParameters {
        DemoParameters(outputDirectory: outputDirectory)
    }

    /// The shortened demo for CI (well under 2 minutes): half the DPO epochs.
    public static func quick(outputDirectory: String) -> DemoParameters {
        var p = DemoParameters(outputDirectory: outputDirectory)
        p.dpoEpochs = 2
        return p
    }

    /// Pairs per rank per micro-step for a global batch: the global batch is split over the
    /// ranks (it must divide evenly, so every rank count that divides it gives the same steps).
    static func perRankBatch(global: Int, worldSize: Int) throws -> Int {
        guard global % worldSize == 0 else {
            throw DemoError.invalidOption("the demo's global batch of \(global) pairs does not split over \(worldSize) ranks; "
                + "run it on a rank count that divides \(global) (1, 2, 4, ...)")
        }
        return global / worldSize
    }
}

/// Why the demo could not run.
public enum DemoError: Error, CustomStringConvertible, LocalizedError, Equatable {
    case invalidOption(String)
    case output(String)
    /// `--require-improvement` and the task score did not rise.
    case noImprovement(String)

    public var description: String {
        switch self {
        case .invalidOption(let m): return "invalid option: \(m)"
        case .output(let m): return "output directory: \(m)"
        case .noImprovement(let m): return m
        }
    }

    public var errorDescription: String? { description }
}
