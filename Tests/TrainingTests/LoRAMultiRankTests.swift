import Foundation
import Llama
import TestSupport
import XCTest

@testable import Training

/// `dpo train --lora-r` (the built binary) on 2 MPI ranks against 1 process: only the adapter
/// gradients are all-reduced, and the adapters come out the same.
final class LoRAMultiRankTests: XCTestCase {
    func adapters(_ job: TrainingJobSandbox, _ out: String) throws -> [String: [Float]] {
        let file = try SafetensorsFile(contentsOf: job.out(out).appendingPathComponent("final").appendingPathComponent("adapter_model.safetensors"))
        var result: [String: [Float]] = [:]
        for tensor in file.tensors { result[tensor.name] = try file.floats(tensor.name) }
        return result
    }

    /// 2 ranks x 2 pairs and 1 rank x 4 pairs, SGD fp32, 2 epochs of 8 pairs, q/v/down adapters
    /// of rank 4: same loss curve (1e-5) and adapters (1e-5 of each tensor's magnitude).
    func testTwoRanksMatchOneRankWithTwiceTheBatch() throws {
        let job = try TrainingJobSandbox()
        let common = ["--optimizer", "sgd", "--lr", "0.5", "--epochs", "2", "--allreduce-dtype", "fp32",
                      "--lora-r", "4", "--lora-targets", "q_proj,v_proj,down_proj"]
        try job.trainSucceeding(ranks: 1, out: "one", common + ["--batch-pairs", "4"])
        let two = try job.trainSucceeding(ranks: 2, out: "two", common + ["--batch-pairs", "2", "--bucket-mb", "0.001"])
        XCTAssertTrue(two.output.contains("global batch 4 pairs (2 x 1 x 2 ranks)"), two.output)
        let lossOne = try job.series("loss", "one"), lossTwo = try job.series("loss", "two")
        XCTAssertEqual(lossOne.count, 4)
        for (x, y) in zip(lossOne, lossTwo) { XCTAssertEqual(x, y, accuracy: 1e-5 * max(abs(x), 1e-3)) }
        let one = try adapters(job, "one"), twoAdapters = try adapters(job, "two")
        XCTAssertEqual(one.count, 2 * 3 * TrainerSandbox.tinyConfig.numHiddenLayers)
        XCTAssertEqual(Set(one.keys), Set(twoAdapters.keys))
        for (name, a) in one {
            let b = twoAdapters[name]!
            if name.contains("lora_B") { XCTAssertGreaterThan(maxAbs(a), 1e-3, "\(name) did not train") }
            XCTAssertLessThanOrEqual(maxAbsDifference(a, b), 1e-5 * max(maxAbs(a), maxAbs(b)), name)
        }
    }
}
