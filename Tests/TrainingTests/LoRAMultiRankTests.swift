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

    /// fp16 base and activations, AdamW, fp16 adapter gradients on the wire, checkpoints every
    /// step: 2 ranks stay within half precision of 1 rank (each fp16 all-reduce rounds the averaged
    /// gradient to 11 bits; Adam's scale-free update moves a weight by at most ~2 lr per step
    /// where the rounding flips a near-zero gradient's sign: 3 steps x 2 x 1e-3 bounds it).
    func testTwoRanksWithFP16MatchOneRankWithinHalfPrecision() throws {
        let job = try TrainingJobSandbox()
        let common = ["--lr", "1e-3", "--max-steps", "3", "--precision", "fp16", "--schedule", "constant", "--lora-r", "4",
                      "--save-every", "1"]
        try job.trainSucceeding(ranks: 1, out: "one", common + ["--batch-pairs", "4"])
        let two = try job.trainSucceeding(ranks: 2, out: "two", common + ["--batch-pairs", "2"])
        XCTAssertTrue(two.output.contains("all-reduce fp16"), two.output)
        let one = try adapters(job, "one"), twoAdapters = try adapters(job, "two")
        // B starts at zero, so B is the movement: the bulk of it must agree (RMS difference < 2% of RMS movement).
        func rms(_ x: [Float]) -> Float { (x.reduce(0) { $0 + $1 * $1 } / Float(max(1, x.count))).squareRoot() }
        for (name, a) in one {
            let b = twoAdapters[name]!
            XCTAssertLessThanOrEqual(maxAbsDifference(a, b), 6e-3, name)
            if name.contains("lora_B") {
                XCTAssertGreaterThan(rms(a), 1e-3, "\(name) did not train")
                let ratio = rms(zip(a, b).map { $0 - $1 }) / rms(a)
                XCTAssertLessThanOrEqual(ratio, 0.02, "\(name): RMS difference / RMS movement \(ratio)")
            }
        }
        let lossOne = try job.series("loss", "one"), lossTwo = try job.series("loss", "two")
        for (x, y) in zip(lossOne, lossTwo) { XCTAssertEqual(x, y, accuracy: 1e-3 * max(abs(x), 1e-3)) }
    }
}
