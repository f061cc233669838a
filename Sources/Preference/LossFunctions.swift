import Foundation

/// The per-pair formulas of docs/ARCHITECTURE.md, The loss family, with their derivatives.
///
/// Every loss is a function of `c = logp_pi(chosen) - logp_ref(chosen)` and
/// `r = logp_pi(rejected) - logp_ref(rejected)` (the log-probs already length-averaged when
/// the options say so); the derivatives with respect to `c` and `r` are the derivatives
/// with respect to the policy log-probs, since the reference is a constant.
/// All arithmetic is in Double; log-sigmoid goes through a stable softplus.
public enum PreferenceLossFormulas {

    /// Value and gradient of one pair's loss.
    public struct PairLoss: Equatable, Sendable {
        public var loss: Double
        /// d loss / d c (= d loss / d policy chosen log-prob).
        public var dChosenLogratio: Double
        /// d loss / d r (= d loss / d policy rejected log-prob).
        public var dRejectedLogratio: Double
    }

    // MARK: - Stable scalar helpers

    /// log(1 + exp(x)) without overflow for large |x|.
    @inlinable
    public static func softplus(_ x: Double) -> Double {
        max(x, 0) + log1p(exp(-abs(x)))
    }

    /// log sigma(x) = -softplus(-x).
    @inlinable
    public static func logSigmoid(_ x: Double) -> Double { -softplus(-x) }

    /// sigma(x) = 1 / (1 + exp(-x)), evaluated on the side that cannot overflow.
    @inlinable
    public static func sigmoid(_ x: Double) -> Double {
        if x >= 0 { return 1 / (1 + exp(-x)) }
        let e = exp(x)
        return e / (1 + e)
    }

    // MARK: - The family

    /// The loss of one pair and its derivatives.
    /// `c`: chosen log-ratio, `r`: rejected log-ratio (see the type's documentation).
    /// `sft` has no pairwise term (its NLL is added by `PreferenceLoss`), so it returns 0 here.
    public static func pairLoss(
        kind: PreferenceLossKind, c: Double, r: Double, beta: Double, labelSmoothing e: Double
    ) -> PairLoss {
        let d = c - r
        let x = beta * d
        switch kind {
        case .sigmoid:
            // -(1-e) log s(x) - e log s(-x);  d/dx = -(1-e) s(-x) + e s(x)
            let loss = -(1 - e) * logSigmoid(x) - e * logSigmoid(-x)
            let dx = -(1 - e) * sigmoid(-x) + e * sigmoid(x)
            return PairLoss(loss: loss, dChosenLogratio: beta * dx, dRejectedLogratio: -beta * dx)

        case .robust:
            // [-(1-e) log s(x) + e log s(-x)] / (1 - 2e);  d/dx = [-(1-e) s(-x) - e s(x)] / (1 - 2e)
            let loss = (-(1 - e) * logSigmoid(x) + e * logSigmoid(-x)) / (1 - 2 * e)
            let dx = (-(1 - e) * sigmoid(-x) - e * sigmoid(x)) / (1 - 2 * e)
            return PairLoss(loss: loss, dChosenLogratio: beta * dx, dRejectedLogratio: -beta * dx)

        case .hinge:
            // max(0, 1 - x); the subgradient at the kink is 0, as torch.relu's.
            let margin = 1 - x
            let dx: Double = margin > 0 ? -1 : 0
            return PairLoss(loss: max(0, margin), dChosenLogratio: beta * dx, dRejectedLogratio: -beta * dx)

        case .ipo:
            // (d - 1/(2 beta))^2 on length-averaged log-probs (the caller averages).
            let gap = d - 1 / (2 * beta)
            return PairLoss(loss: gap * gap, dChosenLogratio: 2 * gap, dRejectedLogratio: -2 * gap)

        case .bcoPair:
            // -log s(beta c) - log s(-beta r). Early TRL versions subtracted a running mean of
            // the rewards (delta) inside both sigmoids; docs/ARCHITECTURE.md and TRL 1.x do not, and
            // without that state the loss stays a pure function (and micro-batching exact).
            let chosenArgument = beta * c
            let rejectedArgument = beta * r
            let loss = -logSigmoid(chosenArgument) - logSigmoid(-rejectedArgument)
            return PairLoss(
                loss: loss,
                dChosenLogratio: -beta * sigmoid(-chosenArgument),
                dRejectedLogratio: beta * sigmoid(rejectedArgument))

        case .sppoHard:
            // (c - 1/(2 beta))^2 + (r + 1/(2 beta))^2
            let half = 1 / (2 * beta)
            let chosenGap = c - half, rejectedGap = r + half
            return PairLoss(
                loss: chosenGap * chosenGap + rejectedGap * rejectedGap,
                dChosenLogratio: 2 * chosenGap, dRejectedLogratio: 2 * rejectedGap)

        case .ncaPair:
            // -log s(beta c) - 1/2 log s(-beta c) - 1/2 log s(-beta r)
            let chosenReward = beta * c, rejectedReward = beta * r
            let loss = -logSigmoid(chosenReward) - 0.5 * logSigmoid(-chosenReward) - 0.5 * logSigmoid(-rejectedReward)
            return PairLoss(
                loss: loss,
                dChosenLogratio: beta * (-sigmoid(-chosenReward) + 0.5 * sigmoid(chosenReward)),
                dRejectedLogratio: beta * 0.5 * sigmoid(rejectedReward))

        case .apoZero:
            // (1 - s(beta c)) + s(beta r);  s'(z) = s(z) s(-z)
            let chosenReward = beta * c, rejectedReward = beta * r
            let loss = (1 - sigmoid(chosenReward)) + sigmoid(rejectedReward)
            return PairLoss(
                loss: loss,
                dChosenLogratio: -beta * sigmoid(chosenReward) * sigmoid(-chosenReward),
                dRejectedLogratio: beta * sigmoid(rejectedReward) * sigmoid(-rejectedReward))

        case .apoDown:
            // s(beta c) + (1 - s(beta d))
            let chosenReward = beta * c
            let loss = sigmoid(chosenReward) + (1 - sigmoid(x))
            let dx = -sigmoid(x) * sigmoid(-x)
            return PairLoss(
                loss: loss,
                dChosenLogratio: beta * sigmoid(chosenReward) * sigmoid(-chosenReward) + beta * dx,
                dRejectedLogratio: -beta * dx)

        case .exoPair:
            // KL(Bernoulli(s(x)) || Bernoulli(1-e)):
            //   s(x)[log s(x) - log(1-e)] + s(-x)[log s(-x) - log e]
            // d/dx = s(x) s(-x) (x - log((1-e)/e)), using log s(x) - log s(-x) = x.
            let p = sigmoid(x), q = sigmoid(-x)
            let loss = p * (logSigmoid(x) - log(1 - e)) + q * (logSigmoid(-x) - log(e))
            let dx = p * q * (x - log((1 - e) / e))
            return PairLoss(loss: loss, dChosenLogratio: beta * dx, dRejectedLogratio: -beta * dx)

        case .sft:
            return PairLoss(loss: 0, dChosenLogratio: 0, dRejectedLogratio: 0)
        }
    }
}
