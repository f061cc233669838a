import Foundation
import TestSupport
import XCTest

@testable import Preference

/// The loss family: hand-derived values, gradients against finite differences,
/// micro-batch additivity, validation, and stability at extreme log-probs.
final class LossFamilyTests: XCTestCase {

    // MARK: - Helpers

    private func makeLogps(
        _ pc: [Float], _ pr: [Float], _ rc: [Float], _ rr: [Float], _ nc: [Int], _ nr: [Int]
    ) -> PairLogps {
        PairLogps(
            policyChosen: pc, policyRejected: pr, referenceChosen: rc, referenceRejected: rr,
            chosenTokens: nc, rejectedTokens: nr)
    }

    /// Every loss/option combination the tests sweep.
    private var optionSweep: [PreferenceLossOptions] {
        var all: [PreferenceLossOptions] = []
        for kind in PreferenceLossKind.allCases {
            for beta in [0.1, 0.7] {
                var o = PreferenceLossOptions(kind: kind, beta: beta)
                if kind == .exoPair { o.labelSmoothing = 0.01 }
                all.append(o)
                if kind.usesLabelSmoothing {
                    var smoothed = o
                    smoothed.labelSmoothing = 0.2
                    all.append(smoothed)
                }
                var rpo = o
                rpo.rpoAlpha = 0.5
                all.append(rpo)
                var averaged = o
                averaged.averageLogps = true
                all.append(averaged)
                var free = o
                free.referenceFree = true
                all.append(free)
            }
        }
        return all
    }

    // MARK: - Hand-derived values

    /// Policy == reference: c = r = 0, so sigmoid's loss is -log s(0) = ln 2 for every pair,
    /// the rewards are 0, and d loss / d c = -beta s(0) = -beta/2 (divided by the global pair count).
    func testSigmoidAtReferenceIsLn2WithZeroRewards() throws {
        let logps = makeLogps([-5, -9], [-7, -3], [-5, -9], [-7, -3], [2, 4], [3, 1])
        let options = PreferenceLossOptions(kind: .sigmoid, beta: 0.1)
        let result = try PreferenceLoss.compute(logps, options: options, normalizer: .init(globalPairs: 2, globalChosenTokens: 6))
        for loss in result.pairLosses { XCTAssertEqual(loss, log(2.0), accuracy: 1e-15) }
        XCTAssertEqual(result.objective, 0.6931471805599453, accuracy: 1e-15)
        XCTAssertEqual(result.chosenRewards, [0, 0])
        XCTAssertEqual(result.rejectedRewards, [0, 0])
        for g in result.dPolicyChosen { XCTAssertEqual(g, -0.1 * 0.5 / 2, accuracy: 1e-15) }
        for g in result.dPolicyRejected { XCTAssertEqual(g, 0.1 * 0.5 / 2, accuracy: 1e-15) }
    }

    /// c = 2, r = -1 with beta 0.5: d = 3, x = 1.5.
    /// sigmoid e=0.1: 0.9 softplus(-1.5) + 0.1 softplus(1.5)
    ///   softplus(-1.5) = ln(1 + e^-1.5) = 0.2014132779827524, softplus(1.5) = 1.7014132779827524
    ///   -> 0.18127195 + 0.17014133 = 0.35141328
    /// ipo (one token each, so averaging is the identity): (3 - 1)^2 = 4
    /// hinge: max(0, 1 - 1.5) = 0;  sppo_hard: (2 - 1)^2 + (-1 + 1)^2 = 1
    func testHandComputedValues() throws {
        let logps = makeLogps([-1], [-6], [-3], [-5], [1], [1])
        func loss(_ kind: PreferenceLossKind, _ e: Double = 0) throws -> Double {
            let o = PreferenceLossOptions(kind: kind, beta: 0.5, labelSmoothing: e)
            return try PreferenceLoss.compute(logps, options: o, normalizer: .init(globalPairs: 1, globalChosenTokens: 1))
                .objective
        }
        XCTAssertEqual(try loss(.sigmoid, 0.1), 0.9 * 0.2014132779827524 + 0.1 * 1.7014132779827524, accuracy: 1e-12)
        XCTAssertEqual(try loss(.ipo), 4, accuracy: 1e-12)
        XCTAssertEqual(try loss(.hinge), 0, accuracy: 1e-12)
        XCTAssertEqual(try loss(.sppoHard), 1, accuracy: 1e-12)
        // sft: NLL of the chosen = 1 over 1 token.
        XCTAssertEqual(try loss(.sft), 1, accuracy: 1e-12)
        // exo_pair with e = s(-1.5) would be KL(p || p) = 0 at x = 1.5: 1-e = s(1.5).
        let e = PreferenceLossFormulas.sigmoid(-1.5)
        XCTAssertEqual(try loss(.exoPair, e), 0, accuracy: 1e-12)
    }

    /// IPO is zero exactly at the target gap 1/(2 beta) of the *averaged* log-ratios.
    func testIPOTargetsHalfInverseBetaOnAveragedLogps() throws {
        let beta = 0.25  // target gap 2
        // chosen: 4 tokens, log-ratio sum 8 -> 2 per token; rejected: 2 tokens, log-ratio 0.
        let logps = makeLogps([-2], [-10], [-10], [-10], [4], [2])
        let o = PreferenceLossOptions(kind: .ipo, beta: beta)
        let r = try PreferenceLoss.compute(logps, options: o, normalizer: .init(globalPairs: 1, globalChosenTokens: 4))
        XCTAssertEqual(r.objective, 0, accuracy: 1e-15)
        XCTAssertEqual(r.dPolicyChosen[0], 0, accuracy: 1e-15)
        // Rewards are reported on sums (TRL 1.x): beta * 8.
        XCTAssertEqual(r.chosenRewards[0], 2, accuracy: 1e-15)
    }

    // MARK: - Gradients

    /// d objective / d policy sums against central differences of the objective, for every loss
    /// and option combination, on random log-probs.
    func testGradientsMatchFiniteDifferences() throws {
        var random = TestRandom(seed: 7)
        for options in optionSweep {
            for _ in 0..<3 {
                let pairs = 3
                let nc = (0..<pairs).map { _ in 1 + Int(random.next() % 9) }
                let nr = (0..<pairs).map { _ in 1 + Int(random.next() % 9) }
                let pc = (0..<pairs).map { i in -Float(nc[i]) * Float(random.unit() * 3 + 0.2) }
                let pr = (0..<pairs).map { i in -Float(nr[i]) * Float(random.unit() * 3 + 0.2) }
                let rc = pc.map { $0 + Float(random.unit() * 4 - 2) }
                let rr = pr.map { $0 + Float(random.unit() * 4 - 2) }
                let logps = makeLogps(pc, pr, rc, rr, nc, nr)
                let normalizer = LossNormalizer(globalPairs: 5, globalChosenTokens: nc.reduce(0, +) + 3)
                let result = try PreferenceLoss.compute(logps, options: options, normalizer: normalizer)

                // Finite differences in Double on the formulas: perturb the sums by +-h.
                let h: Float = 1.0 / 64  // exactly representable, so Float inputs move by exactly h
                for i in 0..<pairs {
                    for side in 0..<2 {
                        var plus = logps, minus = logps
                        if side == 0 { plus.policyChosen[i] += h; minus.policyChosen[i] -= h } else {
                            plus.policyRejected[i] += h
                            minus.policyRejected[i] -= h
                        }
                        let fPlus = try PreferenceLoss.compute(plus, options: options, normalizer: normalizer).objective
                        let fMinus = try PreferenceLoss.compute(minus, options: options, normalizer: normalizer).objective
                        let numeric = (fPlus - fMinus) / (2 * Double(h))
                        let analytic = side == 0 ? result.dPolicyChosen[i] : result.dPolicyRejected[i]
                        // Hinge has a kink; skip points within h of it.
                        if options.kind == .hinge {
                            let c = Double(logps.policyChosen[i] - (options.referenceFree ? 0 : logps.referenceChosen[i]))
                            let r = Double(logps.policyRejected[i] - (options.referenceFree ? 0 : logps.referenceRejected[i]))
                            let f = options.usesAveragedLogps
                            let d = c / (f ? Double(nc[i]) : 1) - r / (f ? Double(nr[i]) : 1)
                            if abs(1 - options.beta * d) < options.beta * 2 * Double(h) { continue }
                        }
                        XCTAssertEqual(
                            analytic, numeric, accuracy: 1e-6 + 1e-4 * abs(numeric),
                            "\(options) pair \(i) side \(side)")
                    }
                }
            }
        }
    }

    // MARK: - Global-batch normalisation

    /// Splitting a batch into micro-batches that share the global normalizer gives
    /// objectives that add up to the whole batch's, and the same per-pair gradients.
    func testMicroBatchesAddUpToTheGlobalBatch() throws {
        let pc: [Float] = [-3, -8, -2.5, -11], pr: [Float] = [-4, -7.5, -6, -10]
        let rc: [Float] = [-3.5, -7, -3, -10], rr: [Float] = [-3.75, -8, -5, -12]
        let nc = [2, 5, 1, 6], nr = [3, 4, 4, 5]
        let whole = makeLogps(pc, pr, rc, rr, nc, nr)
        let normalizer = LossNormalizer(globalPairs: 4, globalChosenTokens: nc.reduce(0, +))
        for options in optionSweep {
            let full = try PreferenceLoss.compute(whole, options: options, normalizer: normalizer)
            var sum = 0.0
            for i in 0..<4 {
                let one = makeLogps([pc[i]], [pr[i]], [rc[i]], [rr[i]], [nc[i]], [nr[i]])
                let part = try PreferenceLoss.compute(one, options: options, normalizer: normalizer)
                sum += part.objective
                XCTAssertEqual(part.dPolicyChosen[0], full.dPolicyChosen[i], "\(options)")
                XCTAssertEqual(part.dPolicyRejected[0], full.dPolicyRejected[i], "\(options)")
            }
            XCTAssertEqual(sum, full.objective, accuracy: 1e-12 * max(1, abs(full.objective)), "\(options)")

            // The metric sums give the same loss as the objective.
            var sums = PreferenceMetricSums()
            sums.add(full, chosenTokens: nc)
            XCTAssertEqual(sums.loss(options: options), full.objective, accuracy: 1e-12 * max(1, abs(full.objective)))
        }
    }

    // MARK: - Metrics

    func testMetricNamesAndValues() throws {
        let logps = makeLogps([-2, -6], [-4, -3], [-3, -5], [-3, -5], [2, 3], [2, 2])
        let options = PreferenceLossOptions(kind: .sigmoid, beta: 0.5)
        let r = try PreferenceLoss.compute(logps, options: options, normalizer: .init(globalPairs: 2, globalChosenTokens: 5))
        var sums = PreferenceMetricSums()
        sums.add(r, chosenTokens: [2, 3])
        sums.addLogits(chosenSum: 10, chosenTokens: 5, rejectedSum: -8, rejectedTokens: 4)
        let metrics = sums.metrics(options: options, prefix: "eval_")
        XCTAssertEqual(
            metrics.map(\.name),
            ["eval_loss", "eval_rewards/chosen", "eval_rewards/rejected", "eval_rewards/accuracies",
             "eval_rewards/margins", "eval_logps/chosen", "eval_logps/rejected", "eval_logits/chosen",
             "eval_logits/rejected"])
        let value = Dictionary(uniqueKeysWithValues: metrics.map { ($0.name, $0.value) })
        // chosen log-ratios 1, -1 -> rewards 0.5, -0.5; rejected -1, 2 -> -0.5, 1.
        XCTAssertEqual(value["eval_rewards/chosen"]!, 0, accuracy: 1e-15)
        XCTAssertEqual(value["eval_rewards/rejected"]!, 0.25, accuracy: 1e-15)
        XCTAssertEqual(value["eval_rewards/accuracies"]!, 0.5, accuracy: 1e-15)
        XCTAssertEqual(value["eval_rewards/margins"]!, -0.25, accuracy: 1e-15)
        XCTAssertEqual(value["eval_logps/chosen"]!, -4, accuracy: 1e-15)
        XCTAssertEqual(value["eval_logps/rejected"]!, -3.5, accuracy: 1e-15)
        XCTAssertEqual(value["eval_logits/chosen"]!, 2, accuracy: 1e-15)
        XCTAssertEqual(value["eval_logits/rejected"]!, -2, accuracy: 1e-15)
        XCTAssertEqual(value["eval_loss"]!, r.objective, accuracy: 1e-15)
        XCTAssertEqual(PreferenceMetricSums(packed: sums.packed), sums)
    }

    // MARK: - Validation and stability

    func testInvalidOptionsAreRefusedWithTheirName() {
        func message(_ o: PreferenceLossOptions) -> String? {
            do { try o.validate(); return nil } catch { return "\(error)" }
        }
        XCTAssertTrue(message(.init(beta: 0))?.contains("--beta") ?? false)
        XCTAssertTrue(message(.init(beta: -1))?.contains("--beta") ?? false)
        XCTAssertTrue(message(.init(beta: .nan))?.contains("--beta") ?? false)
        XCTAssertTrue(message(.init(labelSmoothing: 0.5))?.contains("--label-smoothing") ?? false)
        XCTAssertTrue(message(.init(labelSmoothing: -0.1))?.contains("--label-smoothing") ?? false)
        XCTAssertTrue(message(.init(kind: .robust, labelSmoothing: 0.7))?.contains("--label-smoothing") ?? false)
        XCTAssertTrue(message(.init(kind: .exoPair))?.contains("exo_pair") ?? false)
        XCTAssertTrue(message(.init(kind: .ipo, labelSmoothing: 0.1))?.contains("no effect") ?? false)
        XCTAssertTrue(message(.init(rpoAlpha: -1))?.contains("--rpo-alpha") ?? false)
        XCTAssertNil(message(.init(kind: .exoPair, labelSmoothing: 1e-3)))
        XCTAssertNil(message(.init(kind: .sigmoid, labelSmoothing: 0.3)))
    }

    func testShapeMismatchIsAnError() {
        let logps = makeLogps([-1, -2], [-1], [-1, -2], [-1, -2], [1, 1], [1, 1])
        XCTAssertThrowsError(
            try PreferenceLoss.compute(logps, options: .init(), normalizer: .init(globalPairs: 2, globalChosenTokens: 2)))
    }

    /// Log-ratios of +-1e4 (beta d = +-1e3) keep every loss and gradient finite.
    func testExtremeLogRatiosStayFinite() throws {
        for options in optionSweep {
            for (c, r) in [(Float(1e4), Float(-1e4)), (-1e4, 1e4), (0, 0)] {
                let logps = makeLogps([c - 10], [r - 10], [-10], [-10], [1], [1])
                let result = try PreferenceLoss.compute(logps, options: options, normalizer: .init(globalPairs: 1, globalChosenTokens: 1))
                XCTAssertTrue(result.objective.isFinite, "\(options) c=\(c)")
                XCTAssertTrue(result.dPolicyChosen[0].isFinite && result.dPolicyRejected[0].isFinite, "\(options)")
            }
        }
    }
}
