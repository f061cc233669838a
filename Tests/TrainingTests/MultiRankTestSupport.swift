import Foundation
import Llama
import TestSupport
import XCTest

@testable import Training

/// A tiny model and preference file in a scratch directory, trained by the built `dpo`
/// binary on 1 rank (alone) or N ranks (under mpirun), for the multi-rank and fault tests.
final class TrainingJobSandbox {
    let sandbox: TrainerSandbox
    let data: URL
    var root: URL { sandbox.root }

    /// Eight arithmetic pairs (so 1, 2, 4 and 8 all divide the data), or `pairs`; the tiny model, or `config`'s.
    init(pairs: [(String, String, String)] = TrainingJobSandbox.eightPairs, config: LlamaConfig = TrainerSandbox.tinyConfig) throws {
        sandbox = try TrainerSandbox(config: config)
        data = try sandbox.writePairs("train.jsonl", pairs)
    }

    static let eightPairs: [(String, String, String)] = TrainerSandbox.arithmetic + [
        ("5+1=", "6", "7"), ("9-3=", "6", "5"), ("2*3=", "6", "8"), ("7+2=", "9", "1"),
    ]

    func out(_ name: String) -> URL { root.appendingPathComponent(name) }

    /// `dpo train` arguments: this sandbox's model and data, OUT = `out`, one BLAS thread per
    /// rank (two ranks share the machine's cores with other tests), a log line every step.
    func trainArguments(out: String, _ extra: [String]) -> [String] {
        ["train", "--model", sandbox.modelDirectory.path, "--data", data.path, "--out", self.out(out).path,
         "--log-every", "1", "--seed", "3", "--threads", "1"] + extra
    }

    /// Runs `dpo train` on `ranks` ranks; `faults` goes into DPO_FAULT_INJECT of every rank.
    func train(ranks: Int, out: String, _ extra: [String], faults: String? = nil, timeout: Double = MPIJob.hangLimit) throws -> MPIJob.Outcome {
        try MPIJob.dpo(ranks: ranks, trainArguments(out: out, extra),
                       extraEnvironment: faults.map { [FaultInjection.environmentVariable: $0] } ?? [:], timeout: timeout)
    }

    /// Like `train`, failing the test (with the job's output) unless it exits 0 in time.
    @discardableResult
    func trainSucceeding(ranks: Int, out: String, _ extra: [String], faults: String? = nil,
                         file: StaticString = #filePath, line: UInt = #line) throws -> MPIJob.Outcome {
        let outcome = try train(ranks: ranks, out: out, extra, faults: faults)
        XCTAssertFalse(outcome.timedOut, "job timed out:\n\(outcome.output)", file: file, line: line)
        XCTAssertEqual(outcome.status, 0, "job failed:\n\(outcome.output)", file: file, line: line)
        return outcome
    }

    /// Like `train` with a `stop` fault: the job must stop on request, exit 75 (EX_TEMPFAIL:
    /// stopped with a checkpoint, neither success nor failure) in time.
    @discardableResult
    func trainStopping(ranks: Int, out: String, _ extra: [String], faults: String,
                       file: StaticString = #filePath, line: UInt = #line) throws -> MPIJob.Outcome {
        let outcome = try train(ranks: ranks, out: out, extra, faults: faults)
        XCTAssertFalse(outcome.timedOut, "job timed out:\n\(outcome.output)", file: file, line: line)
        XCTAssertEqual(outcome.status, 75, "job did not stop on request:\n\(outcome.output)", file: file, line: line)
        return outcome
    }

    // MARK: - What a run left

    /// metrics.jsonl of OUT: one dictionary per logged line (step included), in file order.
    func metrics(_ out: String) throws -> [[String: Double]] {
        let text = try String(contentsOf: self.out(out).appendingPathComponent("metrics.jsonl"), encoding: .utf8)
        return try text.split(separator: "\n").map { line in
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] ?? [:]
            return object.compactMapValues { ($0 as? NSNumber)?.doubleValue }
        }
    }

    /// The series of metric `name` over the training lines (evaluation lines have no "loss").
    func series(_ name: String, _ out: String) throws -> [Double] {
        try metrics(out).filter { $0["loss"] != nil }.compactMap { $0[name] }
    }

    /// The fp32 master weights of a checkpoint directory under OUT (e.g. "final").
    func masterWeights(_ out: String, _ checkpoint: String = "final") throws -> [Float] {
        try TrainerSandbox.masterWeights(self.out(out).appendingPathComponent(checkpoint))
    }

    /// The fp32 master weights of a checkpoint under OUT, whichever way its AdamW state was saved
    /// (one optimizer file, or `--zero 1|2`'s per-rank shards).
    func adamwMasterWeights(_ out: String, _ checkpoint: String = "final") throws -> [Float] {
        try TrainingCheckpoint.read(self.out(out).appendingPathComponent(checkpoint), optimizerKind: .adamw).masterWeights
    }

    /// Fails unless the run into OUT moved the weights (so a comparison of two runs is not
    /// vacuous): the first tensor by name of its final model differs from the initial one by
    /// more than 1e-4 somewhere.
    func assertTrained(_ out: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let initial = try SafetensorsFile(contentsOf: sandbox.modelDirectory.appendingPathComponent("model.safetensors"))
        let name = initial.tensors.map(\.name).sorted().first!
        XCTAssertGreaterThan(maxAbsDifference(try initial.floats(name), try tensors(out)[name]!), 1e-4, "\(name) did not train",
                             file: file, line: line)
    }

    /// The tensors of a checkpoint's model.safetensors, by name.
    func tensors(_ out: String, _ checkpoint: String = "final") throws -> [String: [Float]] {
        let file = try SafetensorsFile(contentsOf: self.out(out).appendingPathComponent(checkpoint).appendingPathComponent("model.safetensors"))
        var result: [String: [Float]] = [:]
        for tensor in file.tensors { result[tensor.name] = try file.floats(tensor.name) }
        return result
    }

    /// The initial model's tensors, by name.
    func initialTensors() throws -> [String: [Float]] {
        let file = try SafetensorsFile(contentsOf: sandbox.modelDirectory.appendingPathComponent("model.safetensors"))
        var result: [String: [Float]] = [:]
        for tensor in file.tensors { result[tensor.name] = try file.floats(tensor.name) }
        return result
    }
}

/// Lines of metrics.jsonl without the timing-dependent value, for exact comparison.
func withoutTiming(_ lines: [[String: Double]]) -> [[String: Double]] {
    lines.map { $0.filter { $0.key != "tokens_per_second" } }
}
