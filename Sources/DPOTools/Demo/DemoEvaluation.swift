import Foundation
import Llama
import Preference
import Training

/// What the demo measures on a model: the task (greedy answers on held-out and on training
/// prompts) and the held-out preference pairs (does the model put more log-probability on the
/// correct answer; after DPO, does the implicit reward rank the pairs right).
public struct DemoEvaluation: Codable, Equatable, Sendable {
    /// Greedy accuracy on every held-out prompt of the task (never trained on).
    public var heldOutAccuracy: Double
    public var heldOutPrompts: Int
    /// Greedy accuracy on every training prompt of the task (SFT saw them with noisy answers).
    public var trainAccuracy: Double
    public var trainPrompts: Int
    /// Held-out pairs where log pi(chosen) > log pi(rejected).
    public var heldOutPreferenceAccuracy: Double
    /// Mean sequence log-probs of the held-out chosen and rejected answers.
    public var heldOutChosenLogps: Double
    public var heldOutRejectedLogps: Double
    /// Against the reference (the SFT model): share of held-out pairs whose implicit reward
    /// beta * (log pi - log pi_ref) ranks chosen above rejected (TRL's rewards/accuracies), and
    /// the mean margin. 0 for the reference itself (all rewards are 0).
    public var heldOutRewardAccuracy: Double
    public var heldOutRewardMargin: Double
    /// Per held-out pair (chosen, rejected) log-probs, to compute rewards against this model.
    public var pairLogps: [[Double]]

    /// Scores the model in `modelDirectory`; with `reference`, also the implicit rewards against it.
    public static func evaluate(modelDirectory: String, heldOutPairsFile: String,
                                reference: DemoEvaluation? = nil, beta: Double = 0.1) throws -> DemoEvaluation {
        let (model, tokenizer) = try TaskScoring.loadModel(modelDirectory)
        let task = DemoTask.arithmetic
        var heldOut = TaskScoring.Parameters(task: task, n: task.heldOutPromptCount)
        heldOut.maxNewTokens = 4
        var train = heldOut
        train.split = .train
        train.n = TaskScoring.trainingPrompts(task).count
        let heldOutResult = try TaskScoring.score(model: model, tokenizer: tokenizer, heldOut)
        let trainResult = try TaskScoring.score(model: model, tokenizer: tokenizer, train)

        let pairs = try TrainingInputs.loadPairs(heldOutPairsFile, flag: "held-out pairs", tokenizer: tokenizer,
                                                 encoding: EncodingOptions(maxLength: 32, maxPromptLength: 16)).pairs
        let scores = PreferenceEvaluator.score(model: model, pairs: pairs, batchPairs: 16, paddingId: tokenizer.paddingId, average: false)
        let logps = scores.map { [Double($0.chosenLogps), Double($0.rejectedLogps)] }
        let count = Double(max(scores.count, 1))
        var rewardAccuracy = 0.0, rewardMargin = 0.0
        if let reference, reference.pairLogps.count == logps.count {
            for (policy, ref) in zip(logps, reference.pairLogps) {
                let chosenReward = beta * (policy[0] - ref[0]), rejectedReward = beta * (policy[1] - ref[1])
                if chosenReward > rejectedReward { rewardAccuracy += 1 }
                rewardMargin += chosenReward - rejectedReward
            }
        }
        return DemoEvaluation(
            heldOutAccuracy: heldOutResult.accuracy, heldOutPrompts: heldOutResult.n,
            trainAccuracy: trainResult.accuracy, trainPrompts: trainResult.n,
            heldOutPreferenceAccuracy: Double(logps.filter { $0[0] > $0[1] }.count) / count,
            heldOutChosenLogps: logps.map { $0[0] }.reduce(0, +) / count,
            heldOutRejectedLogps: logps.map { $0[1] }.reduce(0, +) / count,
            heldOutRewardAccuracy: rewardAccuracy / count, heldOutRewardMargin: rewardMargin / count,
            pairLogps: logps)
    }
}
