import XCTest

@testable import Preference

/// Our loss family against TRL 1.16's DPOTrainer on the same log-probs
/// (LossTRLFixture.py writes the values into LossTRLFixtureTests.swift).
final class LossTRLCrossCheckTests: XCTestCase {

    func testEveryLossMatchesTRL() throws {
        let f = TRLLossFixture.self
        XCTAssertEqual(Set(f.cases.map(\.loss)), Set(PreferenceLossKind.allCases.map(\.rawValue)), "every loss is covered")
        for c in f.cases {
            let kind = try XCTUnwrap(PreferenceLossKind(rawValue: c.loss))
            let options = PreferenceLossOptions(
                kind: kind, beta: c.beta, labelSmoothing: c.labelSmoothing, rpoAlpha: c.rpoAlpha,
                referenceFree: c.referenceFree)
            try options.validate()
            let logps = PairLogps(
                policyChosen: f.policyChosen, policyRejected: f.policyRejected,
                referenceChosen: f.referenceChosen, referenceRejected: f.referenceRejected,
                chosenTokens: f.chosenTokens, rejectedTokens: f.rejectedTokens)
            let normalizer = LossNormalizer(globalPairs: 4, globalChosenTokens: f.chosenTokens.reduce(0, +))
            let r = try PreferenceLoss.compute(logps, options: options, normalizer: normalizer)

            let tolerance = 1e-12
            XCTAssertEqual(r.objective, c.batchLoss, accuracy: tolerance * max(1, abs(c.batchLoss)), c.name)
            for i in 0..<4 {
                XCTAssertEqual(r.dPolicyChosen[i], c.dPolicyChosen[i], accuracy: tolerance, "\(c.name) d chosen \(i)")
                XCTAssertEqual(r.dPolicyRejected[i], c.dPolicyRejected[i], accuracy: tolerance, "\(c.name) d rejected \(i)")
            }
            for (i, expected) in c.pairLosses.enumerated() {
                XCTAssertEqual(r.pairLosses[i], expected, accuracy: tolerance * max(1, abs(expected)), "\(c.name) pair \(i)")
            }
            var sums = PreferenceMetricSums()
            sums.add(r, chosenTokens: f.chosenTokens)
            let metrics = Dictionary(uniqueKeysWithValues: sums.metrics(options: options).map { ($0.name, $0.value) })
            XCTAssertEqual(metrics["loss"]!, c.batchLoss, accuracy: tolerance * max(1, abs(c.batchLoss)), c.name)
            XCTAssertEqual(metrics["rewards/chosen"]!, c.rewardsChosen, accuracy: tolerance, c.name)
            XCTAssertEqual(metrics["rewards/rejected"]!, c.rewardsRejected, accuracy: tolerance, c.name)
            XCTAssertEqual(metrics["rewards/accuracies"]!, c.rewardsAccuracies, accuracy: tolerance, c.name)
            XCTAssertEqual(metrics["rewards/margins"]!, c.rewardsMargins, accuracy: tolerance, c.name)
            XCTAssertEqual(metrics["logps/chosen"]!, c.logpsChosen, accuracy: tolerance, c.name)
            XCTAssertEqual(metrics["logps/rejected"]!, c.logpsRejected, accuracy: tolerance, c.name)
        }
    }
}
