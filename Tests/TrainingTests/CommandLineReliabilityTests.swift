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

    // MARK: - Single-process commands under mpirun

    /// `init`, `generate` and `eval` on 2 ranks: one result, printed and written once, exactly
    /// what 1 rank prints, plus (for the one-process commands) one note that the others idle.
    func testOneProcessCommandsUnderMPIRunOnRankZeroAlone() throws {
        let job = try TrainingJobSandbox()
        let note = "note: dpo init runs on one process: rank 0 does the work, the other 1 rank(s) of this launch do nothing"
        let initialised = try MPIJob.dpo(ranks: 2, ["init", "--out", job.out("init").path])
        XCTAssertEqual(initialised.status, 0, initialised.output)
        let lines = initialised.output.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.filter { $0.hasPrefix("wrote ") }.count, 1, initialised.output)
        XCTAssertEqual(lines.filter { $0 == note }.count, 1, initialised.output)
        XCTAssertEqual(lines.count, 2, initialised.output)

        let model = job.sandbox.modelDirectory.path
        let generate = ["generate", "--model", model, "--prompt", "2+2=", "--max-new-tokens", "3", "--temperature", "1", "--seed", "5"]
        let alone = try MPIJob.dpo(ranks: 1, generate)
        let two = try MPIJob.dpo(ranks: 2, generate)
        XCTAssertEqual(two.status, 0, two.output)
        XCTAssertEqual(two.output.replacingOccurrences(of: note.replacingOccurrences(of: "init", with: "generate") + "\n", with: ""),
                       alone.output)

        let eval = ["eval", "--model", model, "--ref-model", model, "--data", job.data.path]
        let evalAlone = try MPIJob.dpo(ranks: 1, eval)
        let evalTwo = try MPIJob.dpo(ranks: 2, eval)
        XCTAssertEqual(evalTwo.status, 0, evalTwo.output)
        XCTAssertEqual(evalTwo.output.split(separator: "\n").filter { $0.hasPrefix("{") }.count, 1, evalTwo.output)
        XCTAssertEqual(evalAlone.output.split(separator: "\n").filter { $0.hasPrefix("{") }.count, 1, evalAlone.output)
    }

    // MARK: - The batch that runs

    /// `--batch-pairs 100` on 8 pairs trains 8 pairs a step: the summary and the plan line say
    /// 8 (and what was asked), not "global batch 100 pairs".
    func testTheGlobalBatchPrintedIsTheOneThatRuns() throws {
        let job = try TrainingJobSandbox()
        let run = try MPIJob.dpo(ranks: 1, job.trainArguments(out: "run", ["--batch-pairs", "100", "--max-steps", "1"]))
        XCTAssertEqual(run.status, 0, run.output)
        XCTAssertTrue(run.output.contains("global batch      8 pairs: all 8 train pairs each step (100 per rank x 1 accumulation x 1 rank asked for 100)"), run.output)
        XCTAssertTrue(run.output.contains("global batch 8 pairs (all 8 train pairs; 100 x 1 x 1 ranks asked for 100)"), run.output)
        XCTAssertFalse(run.output.contains("global batch 100"), run.output)
        XCTAssertFalse(run.output.contains("100 pairs ="), run.output)
    }
}
