import Distributed
import Foundation
import Llama
import Tokenization

/// Times the real training step (`DPOTrainer`, nothing re-implemented): a randomly
/// initialised preset model, synthetic pairs whose rows are exactly `sequenceLength` byte
/// tokens (prompt a quarter of the row, as the PyTorch anchors), policy forward+backward on
/// 2B rows, reference forward, optimizer. For `dpo bench dpo`.
public enum DPOStepBenchmark {
    public struct Result: Sendable {
        /// Input tokens of chosen+rejected rows per optimizer step: 2 x pairs x (sequenceLength - 1).
        public var tokensPerStep: Int
        /// Median seconds of the timed steps, and the tokens/s it gives.
        public var medianStepSeconds: Double
        public var tokensPerSecond: Double
        public var timedSteps: Int
    }

    /// Runs `warmupSteps + timedSteps + 1` steps in a scratch directory (removed afterwards);
    /// the first `warmupSteps` and the last (which logs and computes `logits/*`) are not timed.
    public static func run(
        preset: LlamaPreset, precision: Precision, batchPairs: Int, sequenceLength: Int, warmupSteps: Int = 1,
        timedSteps: Int = 3, communicator: Communicator = SingleProcessCommunicator()
    ) throws -> Result {
        guard sequenceLength >= 8, batchPairs >= 1, timedSteps >= 1, warmupSteps >= 0 else {
            throw TrainingError.invalidOption("bench: --seq must be >= 8 and --batch-pairs, steps >= 1")
        }
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("dpo-bench-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let modelURL = scratch.appendingPathComponent("model")
        var config = preset.config
        config.maxPositionEmbeddings = max(config.maxPositionEmbeddings, sequenceLength)
        try ModelDirectory.save(config: config, weights: WeightInitializer(seed: 1).weights(for: config), to: modelURL)
        try TokenizerFiles.writeByteTokenizer(to: modelURL)

        // Byte tokenizer: one token per ASCII letter; completion + EOS fills the row.
        let promptLength = sequenceLength / 4
        let completionLength = sequenceLength - promptLength - 1
        let pairsNeeded = batchPairs * communicator.size * (warmupSteps + timedSteps + 1)
        var lines = ""
        for i in 0..<pairsNeeded {
            func text(_ n: Int, _ salt: Int) -> String {
                String((0..<n).map { Character(UnicodeScalar(UInt8(97 + (i * 7 + $0 * 3 + salt) % 26))) })
            }
            let record = ["prompt": text(promptLength, 0), "chosen": text(completionLength, 1), "rejected": text(completionLength, 2)]
            lines += String(decoding: try JSONSerialization.data(withJSONObject: record, options: [.sortedKeys]), as: UTF8.self) + "\n"
        }
        let dataURL = scratch.appendingPathComponent("pairs.jsonl")
        try lines.write(to: dataURL, atomically: true, encoding: .utf8)

        var parameters = TrainingParameters()
        parameters.modelDirectory = modelURL.path
        parameters.dataFile = dataURL.path
        parameters.outputDirectory = scratch.appendingPathComponent("out").path
        parameters.batchPairs = batchPairs
        parameters.maxSteps = warmupSteps + timedSteps + 1
        parameters.logEvery = parameters.maxSteps
        parameters.maxLength = sequenceLength
        parameters.maxPromptLength = promptLength
        parameters.precision = precision
        parameters.shuffle = false
        parameters.learningRate = 1e-6

        final class NullSink: MetricsSink {
            func log(step: Int, metrics: [(name: String, value: Double)]) throws {}
            func close() throws {}
        }
        let trainer = DPOTrainer(parameters: parameters, communicator: communicator)
        trainer.makeMetricsSink = { _, _ in NullSink() }
        trainer.shouldStop = { false }
        var stepEnds: [Double] = []
        trainer.onProgress = { stepEnds.append($0.elapsedSeconds) }
        _ = try trainer.run()

        // Step k's duration = end(k) - end(k-1); keep the timed window.
        let durations = (1..<stepEnds.count).map { stepEnds[$0] - stepEnds[$0 - 1] }
        let timed = Array(durations.dropFirst(max(0, warmupSteps - 1)).prefix(timedSteps)).sorted()
        let median = timed.isEmpty ? .nan : timed[timed.count / 2]
        let tokensPerStep = 2 * batchPairs * communicator.size * (sequenceLength - 1)
        return Result(tokensPerStep: tokensPerStep, medianStepSeconds: median,
                      tokensPerSecond: Double(tokensPerStep) / median, timedSteps: timed.count)
    }
}
