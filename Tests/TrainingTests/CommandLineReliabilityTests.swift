import Foundation
import Llama
import TestSupport
import XCTest

@testable import Training

/// Issue 16's "also fix" items of the commands around training, run on the real `dpo`
/// binary: what a user sees when a model, an option or a file is wrong.
final class CommandLineReliabilityTests: XCTestCase {

    /// A sandbox whose model has finite weights that overflow: `model.norm.weight` all 3e38, so
    /// the logits are inf - inf = NaN (non-finite weights themselves are refused at load).
    private func sandboxWithOverflowingModel() throws -> TrainingJobSandbox {
        let job = try TrainingJobSandbox()
        let config = TrainerSandbox.tinyConfig
        var weights = WeightInitializer(seed: 1, standardDeviation: 0.05).weights(for: config)
        for index in ParameterLayout(config: config).entry("model.norm.weight").range { weights[index] = 3e38 }
        try ModelDirectory.save(config: config, weights: weights, to: job.sandbox.modelDirectory)
        return job
    }

    /// `generate`, `score` and `logps` on a model whose logits are not finite: a one-line error,
    /// non-zero, no NUL bytes (greedy argmax of NaN logits is id 0) and no `null` log-probs.
    func testGenerateScoreAndLogpsRefuseNonFiniteLogits() throws {
        let job = try sandboxWithOverflowingModel()
        let model = job.sandbox.modelDirectory.path
        let generated = try MPIJob.dpo(ranks: 1, ["generate", "--model", model, "--prompt", "2+2=", "--max-new-tokens", "4"])
        XCTAssertEqual(generated.status, 1, generated.output)
        XCTAssertTrue(generated.output.contains(" are not finite (NaN or infinity) after 0 generated token(s)"), generated.output)
        XCTAssertFalse(generated.output.contains("\u{0}"), "NUL bytes printed: \(generated.output.debugDescription)")
        XCTAssertTrue(generated.output.hasPrefix("Error: numerical failure: the model's logits at position "), generated.output)
        let scored = try MPIJob.dpo(ranks: 1, ["score", "--model", model, "--n", "2"])
        XCTAssertEqual(scored.status, 1, scored.output)
        XCTAssertTrue(scored.output.contains("are not finite at position"), scored.output)
        let logps = try MPIJob.dpo(ranks: 1, ["logps", "--model", model, "--data", job.data.path])
        XCTAssertEqual(logps.status, 1, logps.output)
        XCTAssertFalse(logps.output.contains("null"), logps.output)
        XCTAssertTrue(logps.output.hasPrefix("Error: numerical failure: the log-probs of record 0 of \(job.data.path) are not finite (chosen "), logps.output)
        XCTAssertEqual(logps.output.split(separator: "\n").count, 1, logps.output)
    }
}
