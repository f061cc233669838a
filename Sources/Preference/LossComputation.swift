/// Sequence log-probs of B preference pairs: what the loss family consumes.
///
/// All log-probs are *sums* over completion tokens (EOS included), as the model produces
/// them; averaging (`--average-logps`, IPO) happens inside `PreferenceLoss`, so the
/// gradient it returns is with respect to these sums. Reference arrays are ignored (may be
/// empty) when the options make the loss reference-free or `sft`.
public struct PairLogps: Equatable, Sendable {
    public var policyChosen: [Float]       // [B]
    public var policyRejected: [Float]     // [B]
    public var referenceChosen: [Float]    // [B] or empty
    public var referenceRejected: [Float]  // [B] or empty
    public var chosenTokens: [Int]         // [B] completion tokens of each chosen row
    public var rejectedTokens: [Int]       // [B]

    public init(
        policyChosen: [Float], policyRejected: [Float], referenceChosen: [Float], referenceRejected: [Float],
        chosenTokens: [Int], rejectedTokens: [Int]
    ) {
        self.policyChosen = policyChosen
        self.policyRejected = policyRejected
        self.referenceChosen = referenceChosen
        self.referenceRejected = referenceRejected
        self.chosenTokens = chosenTokens
        self.rejectedTokens = rejectedTokens
    }

    public var pairCount: Int { policyChosen.count }
}

/// How big the *global* batch is, so that every micro-batch on every rank scales its
/// share of the loss the same way and the sum of the shares is the global loss
/// (docs/ARCHITECTURE.md, Conventions: 4 micro-batches of 1 pair == 1 batch of 4 pairs).
public struct LossNormalizer: Equatable, Sendable {
    /// Pairs in the global batch (pairs per rank x grad accum x world size).
    public var globalPairs: Int
    /// Chosen completion tokens in the global batch: the NLL of `sft` and `--rpo-alpha`
    /// is averaged over these (as TRL's cross-entropy over the chosen half).
    public var globalChosenTokens: Int

    public init(globalPairs: Int, globalChosenTokens: Int) {
        self.globalPairs = globalPairs
        self.globalChosenTokens = globalChosenTokens
    }
}

/// The loss family applied to a micro-batch.
public struct PreferenceLossResult: Equatable, Sendable {
    /// Pairwise term of each pair (TRL's `losses` before the NLL is added). [B]
    public var pairLosses: [Double]
    /// Negative log-likelihood of each chosen completion, summed over its tokens. [B]
    public var chosenNLLSums: [Double]
    /// beta * (logp_pi - logp_ref) of each chosen / rejected completion; length-averaged log-probs
    /// only under `--average-logps` (IPO averages inside its loss but reports sums, as TRL 1.x). [B]
    public var chosenRewards: [Double]
    public var rejectedRewards: [Double]
    /// The policy log-probs (averaged under `--average-logps`). [B]
    public var chosenLogps: [Double]
    public var rejectedLogps: [Double]
    /// This micro-batch's share of the global loss:
    /// `sum_i pairLoss_i / globalPairs + nllWeight * sum_i chosenNLL_i / globalChosenTokens`.
    public var objective: Double
    /// d objective / d policy chosen (rejected) log-prob *sum*, per pair. [B]
    public var dPolicyChosen: [Double]
    public var dPolicyRejected: [Double]
}

/// Computes the loss family of docs/ARCHITECTURE.md on sequence log-probs.
public enum PreferenceLoss {

    /// Weight of the chosen NLL in the objective: `rpo_alpha`, plus 1 for `sft`.
    public static func nllWeight(_ options: PreferenceLossOptions) -> Double {
        options.rpoAlpha + (options.kind == .sft ? 1 : 0)
    }

    /// Loss, rewards and gradient of a micro-batch.
    public static func compute(
        _ logps: PairLogps, options: PreferenceLossOptions, normalizer: LossNormalizer
    ) throws -> PreferenceLossResult {
        let pairs = logps.pairCount
        // --reference-free takes the reference log-probs as 0; so does sft when given none
        // (its loss ignores them; with them, its rewards are reported against them, as TRL's).
        let referenceGiven = logps.referenceChosen.count == pairs && logps.referenceRejected.count == pairs
        let usesReference = options.needsReference || (!options.referenceFree && options.kind == .sft && referenceGiven)
        guard logps.policyRejected.count == pairs, logps.chosenTokens.count == pairs,
            logps.rejectedTokens.count == pairs
        else {
            throw PreferenceLossError.shapeMismatch(
                "\(pairs) policy chosen, \(logps.policyRejected.count) policy rejected, "
                    + "\(logps.chosenTokens.count) chosen and \(logps.rejectedTokens.count) rejected token counts")
        }
        if usesReference {
            guard logps.referenceChosen.count == pairs, logps.referenceRejected.count == pairs else {
                throw PreferenceLossError.shapeMismatch(
                    "\(pairs) pairs but \(logps.referenceChosen.count) reference chosen and "
                        + "\(logps.referenceRejected.count) reference rejected log-probs")
            }
        }
        guard normalizer.globalPairs > 0 else {
            throw PreferenceLossError.shapeMismatch("the global batch has no pairs")
        }
        let nllWeight = nllWeight(options)
        if nllWeight > 0 && normalizer.globalChosenTokens <= 0 {
            throw PreferenceLossError.shapeMismatch("the NLL term needs chosen tokens, the global batch has none")
        }
        if options.usesAveragedLogps, let bad = (logps.chosenTokens + logps.rejectedTokens).first(where: { $0 <= 0 }) {
            throw PreferenceLossError.shapeMismatch("averaged log-probs need completions with tokens, one has \(bad)")
        }

        let averaged = options.usesAveragedLogps
        let pairScale = 1 / Double(normalizer.globalPairs)
        let nllScale = nllWeight > 0 ? nllWeight / Double(normalizer.globalChosenTokens) : 0
        var result = PreferenceLossResult(
            pairLosses: [], chosenNLLSums: [], chosenRewards: [], rejectedRewards: [], chosenLogps: [],
            rejectedLogps: [], objective: 0, dPolicyChosen: [], dPolicyRejected: [])
        result.pairLosses.reserveCapacity(pairs)

        for i in 0..<pairs {
            let policyChosen = Double(logps.policyChosen[i])
            let policyRejected = Double(logps.policyRejected[i])
            let chosenLogratioSum = policyChosen - (usesReference ? Double(logps.referenceChosen[i]) : 0)
            let rejectedLogratioSum = policyRejected - (usesReference ? Double(logps.referenceRejected[i]) : 0)
            // Length factors: the loss sees logp / n when averaging, so d/d(sum) = d/d(mean) / n.
            let chosenFactor = averaged ? 1 / Double(logps.chosenTokens[i]) : 1
            let rejectedFactor = averaged ? 1 / Double(logps.rejectedTokens[i]) : 1

            let pair = PreferenceLossFormulas.pairLoss(
                kind: options.kind, c: chosenLogratioSum * chosenFactor, r: rejectedLogratioSum * rejectedFactor,
                beta: options.beta, labelSmoothing: options.labelSmoothing)
            let chosenNLL = -policyChosen

            result.pairLosses.append(pair.loss)
            result.chosenNLLSums.append(chosenNLL)
            // Metrics use the log-probs as --average-logps defines them; IPO's averaging inside
            // its loss does not change them (TRL 1.x reports IPO's rewards on sums too).
            let chosenMetricFactor = options.averageLogps ? chosenFactor : 1
            let rejectedMetricFactor = options.averageLogps ? rejectedFactor : 1
            result.chosenRewards.append(options.beta * chosenLogratioSum * chosenMetricFactor)
            result.rejectedRewards.append(options.beta * rejectedLogratioSum * rejectedMetricFactor)
            result.chosenLogps.append(policyChosen * chosenMetricFactor)
            result.rejectedLogps.append(policyRejected * rejectedMetricFactor)

            result.objective += pair.loss * pairScale + chosenNLL * nllScale
            // d(NLL sum) / d(chosen sum) = -1.
            result.dPolicyChosen.append(pair.dChosenLogratio * chosenFactor * pairScale - nllScale)
            result.dPolicyRejected.append(pair.dRejectedLogratio * rejectedFactor * pairScale)
        }
        return result
    }
}
