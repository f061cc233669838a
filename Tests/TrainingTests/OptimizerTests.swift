import Foundation
import Llama
import TestSupport
import XCTest

@testable import Training

/// AdamW / SGD against torch.optim, schedules against transformers, clipping and loss scaling by hand.
final class OptimizerTests: XCTestCase {

    /// The 40-float layout OptimizerTorchFixture.py mirrors (norms at 6..<8, 24..<26, 38..<40).
    private var fixtureLayout: ParameterLayout {
        ParameterLayout(config: LlamaConfig(
            hiddenSize: 2, intermediateSize: 2, numHiddenLayers: 1, numAttentionHeads: 1, numKeyValueHeads: 1,
            vocabSize: 3))
    }

    private func trajectory(_ options: OptimizerOptions) -> [[Float]] {
        let optimizer = FlatOptimizer(options: options, layout: fixtureLayout)
        var weights = OptimizerTorchFixture.initialWeights
        var out: [[Float]] = []
        for (k, gradient) in OptimizerTorchFixture.gradients.enumerated() {
            weights.withUnsafeMutableBufferPointer { w in
                gradient.withUnsafeBufferPointer { g in
                    optimizer.step(weights: w, gradients: g, learningRate: OptimizerTorchFixture.learningRates[k])
                }
            }
            out.append(weights)
        }
        return out
    }

    func testLayoutMatchesTheFixtureScript() {
        let layout = fixtureLayout
        XCTAssertEqual(layout.totalCount, OptimizerTorchFixture.initialWeights.count)
        XCTAssertEqual(layout.entries.filter(\.isNorm).map(\.offset), [6, 24, 38])
    }

    func testAdamWMatchesTorch() {
        let ours = trajectory(OptimizerOptions(kind: .adamw, weightDecay: 0.1, beta1: 0.8, beta2: 0.95, epsilon: 1e-6))
        for (k, expected) in OptimizerTorchFixture.adamWTrajectory.enumerated() {
            XCTAssertLessThan(maxAbsDifference(ours[k], expected), 2e-6, "step \(k + 1)")
        }
    }

    func testSGDMatchesTorch() {
        let ours = trajectory(OptimizerOptions(kind: .sgd, weightDecay: 0.1))
        for (k, expected) in OptimizerTorchFixture.sgdTrajectory.enumerated() {
            XCTAssertLessThan(maxAbsDifference(ours[k], expected), 1e-6, "step \(k + 1)")
        }
    }

    /// First AdamW step by hand: m = (1-b1) g, v = (1-b2) g^2, bias-corrected m/sqrt(v) = sign(g),
    /// so w1 = w0 (1 - lr wd) - lr g / (|g| + eps).
    func testFirstAdamWStepByHand() {
        let layout = fixtureLayout
        let optimizer = FlatOptimizer(options: OptimizerOptions(weightDecay: 0.5, epsilon: 1e-8), layout: layout)
        var w = [Float](repeating: 2, count: layout.totalCount)
        var g = [Float](repeating: 0, count: layout.totalCount)
        g[0] = 3; g[6] = -0.5  // 6 is a norm weight: no decay
        w.withUnsafeMutableBufferPointer { wp in g.withUnsafeBufferPointer { optimizer.step(weights: wp, gradients: $0, learningRate: 0.1) } }
        XCTAssertEqual(w[0], 2 * (1 - 0.05) - 0.1, accuracy: 1e-6)
        XCTAssertEqual(w[6], 2 + 0.1, accuracy: 1e-6)
        XCTAssertEqual(w[1], 2 * (1 - 0.05), accuracy: 1e-6)  // zero gradient: decay only
        XCTAssertEqual(optimizer.stepCount, 1)
    }

    func testSchedulesMatchTransformers() {
        for (name, warmup, total, expected) in OptimizerTorchFixture.schedules {
            let schedule = LearningRateSchedule(
                kind: ScheduleKind(rawValue: name)!, peakLearningRate: 2.0, warmupSteps: warmup, totalSteps: total)
            for (step, lr) in expected.enumerated() {
                XCTAssertEqual(schedule.learningRate(at: step), lr, accuracy: 1e-12, "\(name) warmup \(warmup) step \(step)")
            }
        }
        for (total, warmup) in OptimizerTorchFixture.warmupFromRatio {
            XCTAssertEqual(LearningRateSchedule.warmupSteps(steps: 0, ratio: 0.1, totalSteps: total), warmup)
        }
        XCTAssertEqual(LearningRateSchedule.warmupSteps(steps: 5, ratio: 0.1, totalSteps: 100), 5)
    }

    /// Gradient (3, 4): norm 5. Clipping to 1 scales by 1 / (5 + 1e-6); clipping to 10 leaves it.
    func testClippingByGlobalNorm() {
        var g: [Float] = [3, 4]
        let norm = g.withUnsafeMutableBufferPointer { GradientClipping.clip($0, maxNorm: 1) }
        XCTAssertEqual(norm, 5, accuracy: 1e-12)
        XCTAssertEqual(g[0], Float(3 / (5 + 1e-6)), accuracy: 1e-7)
        XCTAssertEqual(g[1], Float(4 / (5 + 1e-6)), accuracy: 1e-7)
        var h: [Float] = [3, 4]
        _ = h.withUnsafeMutableBufferPointer { GradientClipping.clip($0, maxNorm: 10) }
        XCTAssertEqual(h, [3, 4])
        var none: [Float] = [300, 400]
        XCTAssertEqual(none.withUnsafeMutableBufferPointer { GradientClipping.clip($0, maxNorm: 0) }, 500, accuracy: 1e-9)
        XCTAssertEqual(none, [300, 400])
        var bad: [Float] = [1, .nan]
        XCTAssertTrue(bad.withUnsafeMutableBufferPointer { GradientClipping.clip($0, maxNorm: 1) }.isNaN)
        var large = [Float](repeating: 1, count: 10_000)
        XCTAssertEqual(large.withUnsafeBufferPointer { GradientClipping.globalNorm($0) }, 100, accuracy: 1e-9)
        _ = large
    }

    func testLossScalerBacksOffSkipsAndGrows() {
        var scaler = DynamicLossScaler(enabled: true, growthInterval: 3)
        XCTAssertEqual(scaler.scale, 65536)
        XCTAssertFalse(scaler.update(gradientsFinite: false))
        XCTAssertEqual(scaler.scale, 32768)
        XCTAssertFalse(scaler.update(gradientsFinite: false))
        XCTAssertEqual(scaler.scale, 16384)
        XCTAssertEqual(scaler.consecutiveSkips, 2)
        XCTAssertTrue(scaler.update(gradientsFinite: true))
        XCTAssertEqual(scaler.consecutiveSkips, 0)
        XCTAssertTrue(scaler.update(gradientsFinite: true))
        XCTAssertEqual(scaler.scale, 16384)
        XCTAssertTrue(scaler.update(gradientsFinite: true))
        XCTAssertEqual(scaler.scale, 32768, "doubles after growthInterval clean steps")
        XCTAssertEqual(scaler.totalSkips, 2)
        var fp32 = DynamicLossScaler(enabled: false)
        XCTAssertFalse(fp32.update(gradientsFinite: false))
        XCTAssertEqual(fp32.scale, 1)
        XCTAssertEqual(DynamicLossScaler(enabled: true).growthInterval, 2000)
    }

    func testOptimizerOptionValidation() {
        XCTAssertThrowsError(try OptimizerOptions(weightDecay: -1).validate())
        XCTAssertThrowsError(try OptimizerOptions(beta1: 1).validate())
        XCTAssertThrowsError(try OptimizerOptions(beta2: -0.1).validate())
        XCTAssertThrowsError(try OptimizerOptions(epsilon: 0).validate())
        XCTAssertNoThrow(try OptimizerOptions().validate())
    }
}
