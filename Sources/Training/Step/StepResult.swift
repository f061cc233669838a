import Llama
import Preference

/// What one `DPOStep.step` did.
public struct StepResult: Sendable {
    /// False when a non-finite loss or gradient (on any rank) skipped the update.
    public var applied: Bool
    /// The normalized loss of the step, summed over ranks.
    public var objective: Double
    /// The global gradient norm before clipping (unscaled).
    public var gradNorm: Double
    /// The loss scale the step ran with (1 under fp32).
    public var lossScale: Double
    public var learningRate: Double
    /// This rank's metric sums of the step (`PreferenceMetricSums.metrics` turns them into TRL's names).
    public var metricSums: PreferenceMetricSums
    /// Pairs of the step over all ranks.
    public var globalPairs: Int
    /// Real input tokens (chosen + rejected rows) of the step over all ranks: what tokens/s counts.
    public var globalInputTokens: Double
    /// TRL's `logits/*` sums of this rank's last micro-batch, when asked for.
    public var completionLogits: CompletionLogitSums?
    /// This rank's seconds per phase.
    public var phases: StepPhaseSeconds
}

/// Sums over the completion tokens of one batch of the vocabulary-mean logit (TRL's `logits/*` numerators).
public struct CompletionLogitSums: Sendable {
    public var chosen: Double
    public var chosenTokens: Int
    public var rejected: Double
    public var rejectedTokens: Int

    /// One more forward of `batch` through `policy` with its current weights (the logits one vocabulary panel at a time).
    init(_ batch: PreferenceBatch, policy: LlamaModel) {
        let sums = batch.completionLogitSums(policy.logitSums(batch.rows), vocabSize: policy.config.vocabSize)
        chosen = sums.chosen
        chosenTokens = batch.chosenTokenTotal
        rejected = sums.rejected
        rejectedTokens = batch.rejectedTokenCounts.reduce(0, +)
    }
}
