import Distributed
import Foundation
import Kernels
import Llama
import Tokenization

/// Times the real training step (`DPOTrainer`, nothing re-implemented) on a randomly
/// initialised preset model and synthetic pairs shaped like the PyTorch anchor's
/// (`../shared/anchors/torch_dpo_step.py`): every row has exactly `sequenceLength` input tokens,
/// the first `promptFraction` of them without a label. For `dpo bench dpo`.
///
/// FLOP model (the anchor's): N = matmul parameters (every layer's q, k, v, o, gate, up, down and
/// the LM head; a tied head counted once), L layers, T = `sequenceLength`, d = heads x head_dim;
/// per token 6N for policy forward+backward and 2N for a reference forward, plus causal attention
/// 12·L·T·d/2 (policy) and 4·L·T·d/2 (reference). For the plain step this is exactly the anchor's
/// `8·N·tokens + 16·L·T·d·tokens/2`.
public enum DPOStepBenchmark {
    public struct Options: Sendable {
        public var preset: LlamaPreset
        public var precision: Precision = .fp32
        /// Pairs per rank per step.
        public var batchPairs = 4
        /// Input tokens per row (prompt + completion - 1), as the anchor's `--seq`.
        public var sequenceLength = 256
        /// Input positions without a label: `Int(promptFraction * sequenceLength)` (the anchor's quarter).
        public var promptFraction = 0.25
        public var sharePrompt = false
        public var precomputeReference = false
        /// BLAS threads per rank (nil: the trainer's default, this host's cores / ranks on it).
        public var threads: Int?
        public var warmupSteps = 1
        public var timedSteps = 3
        /// Gradients on the wire between ranks (nil: the trainer's default for `precision`) and bucket size.
        public var allreduceDType: GradientReducer.WireType?
        public var bucketMegabytes: Double = 25

        public init(preset: LlamaPreset) { self.preset = preset }
    }

    public struct Result: Sendable {
        /// Chosen+rejected input tokens of a step, all ranks: 2 x pairs x ranks x sequenceLength.
        public var tokensPerStep: Int
        public var pairsPerStep: Int
        /// Median seconds of the timed steps (the slowest rank's), and the rates it gives.
        public var medianStepSeconds: Double
        public var tokensPerSecond: Double { Double(tokensPerStep) / medianStepSeconds }
        public var pairsPerSecond: Double { Double(pairsPerStep) / medianStepSeconds }
        /// Median process CPU seconds of a timed step (all threads), summed over ranks: on a machine
        /// shared with other work, `tokensPerStep / medianStepCPUSeconds` is the rate per core-second.
        public var medianStepCPUSeconds: Double
        /// Per-phase medians over the timed steps (this rank).
        public var phases: StepPhaseSeconds
        /// FLOPs of the plain step (the anchor's count), and of what this run executes
        /// (shared prompts run once, no reference forward with `--precompute-ref`).
        public var plainStepFLOPs: Double
        public var executedStepFLOPs: Double
        public var timedSteps: Int
        /// Peak resident memory (VmHWM) up to the end of the timed steps, the largest over ranks, MB.
        public var peakResidentMB: Double
    }

    /// Runs `warmupSteps + timedSteps + 1` steps in a scratch directory (removed afterwards);
    /// the first `warmupSteps` and the last (which logs and computes `logits/*`) are not timed.
    public static func run(_ o: Options, communicator: Communicator = SingleProcessCommunicator()) throws -> Result {
        let T = o.sequenceLength
        guard T >= 8, o.batchPairs >= 1, o.timedSteps >= 1, o.warmupSteps >= 0 else {
            throw TrainingError.invalidOption("bench: --seq must be >= 8 and --batch-pairs, steps >= 1")
        }
        guard o.promptFraction >= 0, o.promptFraction < 1 else {
            throw TrainingError.invalidOption("bench: --prompt-fraction must be in [0, 1), got \(o.promptFraction)")
        }
        // Every rank writes into its own scratch directory name, chosen on rank 0 and broadcast.
        var tag = Array(UUID().uuidString.utf8.prefix(36))
        tag.withUnsafeMutableBytes { communicator.broadcast($0, root: 0) }
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("dpo-bench-\(String(decoding: tag, as: UTF8.self))")
        defer { if communicator.isPrimary { try? FileManager.default.removeItem(at: scratch) } }
        let modelURL = scratch.appendingPathComponent("model")
        var config = o.preset.config
        config.maxPositionEmbeddings = max(config.maxPositionEmbeddings, T + 1)
        let dataURL = scratch.appendingPathComponent("pairs.jsonl")

        // A row is prompt + completion tokens t[0...T] (T input tokens); the prompt is P = unlabelled + 1
        // tokens, so the input positions P-1..<T carry labels, as the anchor's mask[:, T//4:].
        let unlabelled = Int(o.promptFraction * Double(T))
        let promptLength = unlabelled + 1
        let completionText = T + 1 - promptLength - 1  // + EOS
        if communicator.isPrimary {
            try ModelDirectory.save(config: config, weights: WeightInitializer(seed: 1).weights(for: config), to: modelURL)
            try TokenizerFiles.writeByteTokenizer(to: modelURL)
            let pairsNeeded = o.batchPairs * communicator.size * (o.warmupSteps + o.timedSteps + 1)
            var lines = ""
            for i in 0..<pairsNeeded {
                // Byte tokenizer: one token per ASCII letter; chosen and rejected differ from their first letter.
                func text(_ n: Int, _ salt: Int) -> String {
                    String((0..<n).map { Character(UnicodeScalar(UInt8(97 + (i * 7 + $0 * 3 + salt) % 26))) })
                }
                let record = ["prompt": text(promptLength, 0), "chosen": text(completionText, 1), "rejected": text(completionText, 2)]
                lines += String(decoding: try JSONSerialization.data(withJSONObject: record, options: [.sortedKeys]), as: UTF8.self) + "\n"
            }
            try lines.write(to: dataURL, atomically: true, encoding: .utf8)
        }
        communicator.barrier()

        var parameters = TrainingParameters()
        parameters.modelDirectory = modelURL.path
        parameters.dataFile = dataURL.path
        parameters.outputDirectory = scratch.appendingPathComponent("out").path
        parameters.batchPairs = o.batchPairs
        parameters.maxSteps = o.warmupSteps + o.timedSteps + 1
        parameters.logEvery = parameters.maxSteps
        parameters.maxLength = T + 1
        parameters.maxPromptLength = promptLength
        parameters.precision = o.precision
        parameters.shuffle = false
        parameters.learningRate = 1e-6
        parameters.sharePrompt = o.sharePrompt
        parameters.precomputeReference = o.precomputeReference
        parameters.threads = o.threads
        parameters.allreduceDType = o.allreduceDType
        parameters.bucketMegabytes = o.bucketMegabytes

        final class NullSink: MetricsSink {
            func log(step: Int, metrics: [(name: String, value: Double)]) throws {}
            func close() throws {}
        }
        let trainer = DPOTrainer(parameters: parameters, communicator: communicator)
        trainer.makeMetricsSink = { _, _ in NullSink() }
        trainer.shouldStop = { false }
        var stepEnds: [Double] = []
        var phases: [StepPhaseSeconds] = []
        trainer.onProgress = { stepEnds.append($0.elapsedSeconds) }
        // Peak RSS through the timed steps (the last, logged step also computes full logits for `logits/*`).
        var timedPeakMB = 0.0
        var cpuEnds: [Double] = []
        let cpuStart = ModelBenchmark.processCPUSeconds()
        trainer.onStepPhases = {
            phases.append($1)
            cpuEnds.append(ModelBenchmark.processCPUSeconds())
            if phases.count == o.warmupSteps + o.timedSteps { timedPeakMB = ModelBenchmark.peakResidentMB() }
        }
        _ = try trainer.run()

        // Step k's duration = end(k) - end(k-1); keep the timed window (rank 0's clock; the
        // all-reduce inside every step keeps the ranks in step).
        let durations = stepEnds.isEmpty ? [] : [stepEnds[0]] + (1..<stepEnds.count).map { stepEnds[$0] - stepEnds[$0 - 1] }
        // Step indices of the timed window; rank 0 alone has wall-clock ends (onProgress), every rank CPU times and phases.
        let window = o.warmupSteps..<(o.warmupSteps + o.timedSteps)
        let timed = window.compactMap { $0 < durations.count ? durations[$0] : nil }
        let median = communicator.isPrimary ? (timed.isEmpty ? Double.nan : timed.sorted()[timed.count / 2]) : 0
        let cpuDurations = cpuEnds.isEmpty ? [] : [cpuEnds[0] - cpuStart] + (1..<cpuEnds.count).map { cpuEnds[$0] - cpuEnds[$0 - 1] }
        let timedCPU = window.compactMap { $0 < cpuDurations.count ? cpuDurations[$0] : nil }.sorted()
        let medianCPU = timedCPU.isEmpty ? Double.nan : timedCPU[timedCPU.count / 2]
        let timedPhases = window.compactMap { $0 < phases.count ? phases[$0] : nil }
        func medianOf(_ key: KeyPath<StepPhaseSeconds, Double>) -> Double {
            let values = timedPhases.map { $0[keyPath: key] }.sorted()
            return values.isEmpty ? 0 : values[values.count / 2]
        }
        var phaseMedians = StepPhaseSeconds()
        for key in [\StepPhaseSeconds.data, \.referenceForward, \.policyForward, \.backward, \.allReduceWait, \.optimizer] {
            phaseMedians[keyPath: key] = medianOf(key)
        }

        // FLOPs per step, all ranks.
        let pairs = o.batchPairs * communicator.size
        let plainTokens = Double(2 * pairs * T)
        let sharedTokens = o.sharePrompt ? Double(pairs * (2 * T - promptLength)) : plainTokens
        let n = Double(ModelBenchmark.matmulParameters(config))
        let attentionPerToken = Double(config.numHiddenLayers * T * config.qDim) / 2
        func flops(policy: Double, reference: Double) -> Double {
            policy * (6 * n + 12 * attentionPerToken) + reference * (2 * n + 4 * attentionPerToken)
        }
        let peak = Double(communicator.max(Int64((timedPeakMB > 0 ? timedPeakMB : ModelBenchmark.peakResidentMB()) * 1024))) / 1024
        return Result(
            tokensPerStep: Int(plainTokens), pairsPerStep: pairs, medianStepSeconds: median,
            medianStepCPUSeconds: communicator.sum([medianCPU])[0], phases: phaseMedians,
            plainStepFLOPs: flops(policy: plainTokens, reference: plainTokens),
            executedStepFLOPs: flops(policy: sharedTokens, reference: o.precomputeReference ? 0 : sharedTokens),
            timedSteps: timed.count, peakResidentMB: peak)
    }
}
