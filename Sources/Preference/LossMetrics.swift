/// Running sums behind the TRL-named metrics (docs/ARCHITECTURE.md, Conventions).
///
/// Sums, not means, so that micro-batches and ranks combine by addition (one all-reduce of
/// `packed`) and the final means weight every pair and token equally, as TRL's gathered means do.
public struct PreferenceMetricSums: Equatable, Sendable {
    public var pairs: Double = 0
    /// Sum of pairwise losses (TRL's `losses` before the NLL term).
    public var pairLoss: Double = 0
    /// Sum of chosen NLLs over tokens, and the chosen completion tokens they cover.
    public var chosenNLL: Double = 0
    public var chosenTokens: Double = 0
    public var chosenRewards: Double = 0
    public var rejectedRewards: Double = 0
    /// Pairs whose chosen reward is strictly above the rejected one.
    public var accuracies: Double = 0
    public var chosenLogps: Double = 0
    public var rejectedLogps: Double = 0
    /// Sum over completion tokens of the vocabulary-mean logit, and the tokens counted
    /// (TRL's `logits/chosen` is their ratio); zero tokens when the model did not report them.
    public var chosenLogitSum: Double = 0
    public var chosenLogitTokens: Double = 0
    public var rejectedLogitSum: Double = 0
    public var rejectedLogitTokens: Double = 0

    public init() {}

    /// Adds one micro-batch's loss result.
    public mutating func add(_ result: PreferenceLossResult, chosenTokens tokenCounts: [Int]) {
        for i in result.pairLosses.indices {
            pairs += 1
            pairLoss += result.pairLosses[i]
            chosenNLL += result.chosenNLLSums[i]
            chosenTokens += Double(tokenCounts[i])
            chosenRewards += result.chosenRewards[i]
            rejectedRewards += result.rejectedRewards[i]
            accuracies += result.chosenRewards[i] > result.rejectedRewards[i] ? 1 : 0
            chosenLogps += result.chosenLogps[i]
            rejectedLogps += result.rejectedLogps[i]
        }
    }

    /// Adds the sums of vocabulary-mean logits over completion tokens (for `logits/*`).
    public mutating func addLogits(chosenSum: Double, chosenTokens: Int, rejectedSum: Double, rejectedTokens: Int) {
        chosenLogitSum += chosenSum
        chosenLogitTokens += Double(chosenTokens)
        rejectedLogitSum += rejectedSum
        rejectedLogitTokens += Double(rejectedTokens)
    }

    // MARK: - Reduction

    /// All fields in a fixed order, for one all-reduce.
    public var packed: [Double] {
        [pairs, pairLoss, chosenNLL, chosenTokens, chosenRewards, rejectedRewards, accuracies, chosenLogps,
         rejectedLogps, chosenLogitSum, chosenLogitTokens, rejectedLogitSum, rejectedLogitTokens]
    }

    public static let packedCount = 13

    public init(packed v: [Double]) {
        precondition(v.count == Self.packedCount, "PreferenceMetricSums needs \(Self.packedCount) values")
        (pairs, pairLoss, chosenNLL, chosenTokens, chosenRewards, rejectedRewards, accuracies) =
            (v[0], v[1], v[2], v[3], v[4], v[5], v[6])
        (chosenLogps, rejectedLogps, chosenLogitSum, chosenLogitTokens, rejectedLogitSum, rejectedLogitTokens) =
            (v[7], v[8], v[9], v[10], v[11], v[12])
    }

    public static func + (a: Self, b: Self) -> Self {
        Self(packed: zip(a.packed, b.packed).map { $0 + $1 })
    }

    // MARK: - Means

    /// The loss of the batch these sums cover: mean pairwise loss + NLL weight x NLL per chosen token.
    public func loss(options: PreferenceLossOptions) -> Double {
        let weight = PreferenceLoss.nllWeight(options)
        let pairTerm = pairs > 0 ? pairLoss / pairs : 0
        let nllTerm = weight > 0 && chosenTokens > 0 ? weight * chosenNLL / chosenTokens : 0
        return pairTerm + nllTerm
    }

    /// The metrics in TRL's names and order, each name prefixed (`""` or `"eval_"`).
    /// `logits/*` are present only when logit sums were added.
    public func metrics(options: PreferenceLossOptions, prefix: String = "") -> [(name: String, value: Double)] {
        let n = max(pairs, 1)
        var out: [(name: String, value: Double)] = [
            (prefix + "loss", loss(options: options)),
            (prefix + "rewards/chosen", chosenRewards / n),
            (prefix + "rewards/rejected", rejectedRewards / n),
            (prefix + "rewards/accuracies", accuracies / n),
            (prefix + "rewards/margins", (chosenRewards - rejectedRewards) / n),
            (prefix + "logps/chosen", chosenLogps / n),
            (prefix + "logps/rejected", rejectedLogps / n),
        ]
        if chosenLogitTokens > 0 { out.append((prefix + "logits/chosen", chosenLogitSum / chosenLogitTokens)) }
        if rejectedLogitTokens > 0 { out.append((prefix + "logits/rejected", rejectedLogitSum / rejectedLogitTokens)) }
        return out
    }
}
