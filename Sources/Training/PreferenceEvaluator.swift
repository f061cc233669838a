import Distributed
import Llama
import Preference

/// Forward-only scoring of preference pairs: evaluation metrics (`--eval-data`, `dpo eval`)
/// and per-pair sequence log-probs (`dpo logps`).
public enum PreferenceEvaluator {

    /// Metric sums of the loss family over `pairs`, each rank taking pairs r, r+W, ...;
    /// the returned sums are reduced over all ranks (the same on every rank).
    /// - Parameter includeLogits: also compute `logits/*` (one more forward per batch, through `model.logits`).
    public static func evaluate(
        policy: LlamaModel, reference: ReferenceLogps, pairs: [EncodedPair], options: PreferenceLossOptions,
        batchPairs: Int, paddingId: Int32, communicator: Communicator, includeLogits: Bool = true
    ) throws -> PreferenceMetricSums {
        let mine = Array(stride(from: communicator.rank, to: pairs.count, by: communicator.size))
        var sums = PreferenceMetricSums()
        for start in stride(from: 0, to: mine.count, by: batchPairs) {
            let batch = PreferenceBatch(pairs: pairs, indices: Array(mine[start..<min(start + batchPairs, mine.count)]), paddingId: paddingId)
            let (chosen, rejected) = batch.sequenceLogps(policy.forward(batch.rows, saveForBackward: false))
            let referenceSums = reference.sums(for: batch)
            let logps = PairLogps(
                policyChosen: chosen, policyRejected: rejected, referenceChosen: referenceSums.chosen,
                referenceRejected: referenceSums.rejected, chosenTokens: batch.chosenTokenCounts,
                rejectedTokens: batch.rejectedTokenCounts)
            // The normalizer only scales `objective`; evaluation reports from the sums.
            let result = try PreferenceLoss.compute(
                logps, options: options,
                normalizer: LossNormalizer(globalPairs: batch.pairCount, globalChosenTokens: max(1, batch.chosenTokenTotal)))
            sums.add(result, chosenTokens: batch.chosenTokenCounts)
            if includeLogits {
                let logitSums = batch.completionLogitSums(policy.logitSums(batch.rows), vocabSize: policy.config.vocabSize)
                sums.addLogits(
                    chosenSum: logitSums.chosen, chosenTokens: batch.chosenTokenTotal, rejectedSum: logitSums.rejected,
                    rejectedTokens: batch.rejectedTokenCounts.reduce(0, +))
            }
        }
        if communicator.size > 1 { sums = PreferenceMetricSums(packed: communicator.sum(sums.packed)) }
        return sums
    }

    /// One pair's float32 sequence log-probs and completion token counts (`dpo logps`).
    public struct PairScore: Equatable, Sendable {
        public var chosenLogps: Float
        public var rejectedLogps: Float
        public var chosenTokens: Int
        public var rejectedTokens: Int
    }

    /// Sums (or means with `average`) of completion log-probs of every pair, in order.
    public static func score(model: LlamaModel, pairs: [EncodedPair], batchPairs: Int, paddingId: Int32, average: Bool) -> [PairScore] {
        var out: [PairScore] = []
        out.reserveCapacity(pairs.count)
        for start in stride(from: 0, to: pairs.count, by: batchPairs) {
            let batch = PreferenceBatch(pairs: pairs, indices: Array(start..<min(start + batchPairs, pairs.count)), paddingId: paddingId)
            let (chosen, rejected) = batch.sequenceLogps(model.forward(batch.rows, saveForBackward: false))
            for i in 0..<batch.pairCount {
                let nc = batch.chosenTokenCounts[i], nr = batch.rejectedTokenCounts[i]
                out.append(PairScore(
                    chosenLogps: average ? chosen[i] / Float(max(nc, 1)) : chosen[i],
                    rejectedLogps: average ? rejected[i] / Float(max(nr, 1)) : rejected[i],
                    chosenTokens: nc, rejectedTokens: nr))
            }
        }
        return out
    }
}
