import Distributed
import Foundation
import Kernels
import Llama
import Preference
import Tokenization
import Training

/// Times the real training step (`DPOStep`, nothing re-implemented) on a randomly
/// initialised preset model held in memory and synthetic pairs shaped like the PyTorch anchor's
/// (`torch_dpo_step.py`, see README "Performance"): every row has exactly `sequenceLength` input tokens,
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
        /// Prompt tokens of a row. A row is prompt + completion tokens t[0...T] (T input tokens); the
        /// prompt is P = unlabelled + 1 tokens, so the input positions P-1..<T carry labels, as the
        /// anchor's mask[:, T//4:].
        public var promptLength: Int { Int(promptFraction * Double(sequenceLength)) + 1 }
        public var sharePrompt = false
        public var precomputeReference = false
        /// `--gradient-checkpointing`: the policy keeps only layer inputs and recomputes each layer in backward.
        public var gradientCheckpointing = false
        /// BLAS threads per rank (nil: the trainer's default, this host's cores / ranks on it).
        public var threads: Int?
        public var warmupSteps = 1
        public var timedSteps = 3
        /// Gradients on the wire between ranks (nil: the trainer's default for `precision`) and bucket
        /// size (nil: the trainer's default for `zeroStage`, `TrainingParameters.defaultBucketMegabytes`).
        public var allreduceDType: GradientReducer.WireType?
        public var bucketMegabytes: Double?
        /// The bucket size the step uses.
        public var resolvedBucketMegabytes: Double { bucketMegabytes ?? TrainingParameters.defaultBucketMegabytes(zero: zeroStage) }
        /// LoRA rank on all seven projections (0: full fine-tuning); the reference is then the base.
        public var loraRank = 0
        /// `--zero`: 1 = ZeRO stage 1 (optimizer state sharded over ranks); 2 = stage 2 (gradients too).
        public var zeroStage = 0
        /// A Hugging Face model directory (config.json + safetensors, any supported family) to
        /// bench instead of `preset`; its load is timed (`Result.load`).
        public var modelDirectory: URL?
        /// Where to time disk work (nil: none): with a preset, the model is first written here
        /// (untimed) and loaded back (timed); after the steps a checkpoint is saved here and the
        /// same bytes written plainly (`Result.save`). Removed afterwards.
        public var ioDirectory: URL?
        /// Leave what `ioDirectory` received (the written preset model, the checkpoint) in place.
        public var keepIOFiles = false
        /// `--shared-reference`: the ranks of a host map one reference copy (`HostSharedReference`).
        public var sharedReference = false

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
        /// Peak resident memory (VmHWM: building the step included) up to the end of the timed steps, the largest over ranks, MB.
        public var peakResidentMB: Double
        /// Median system CPU seconds and minor page faults of a timed step, summed over ranks.
        public var medianStepSystemSeconds: Double
        public var medianStepMinorFaults: Double
        /// The start-up from a model directory (this rank's; nil when the model was made in memory).
        public var load: LoadFigures?
        /// A checkpoint save and the plain writes of its bytes (rank 0; nil without `ioDirectory`).
        public var save: SaveFigures?
        /// This rank's memory after building the step, before the first step (rss, pss: largest over ranks), MB.
        public var setupRSSMB = 0.0, setupPSSMB = 0.0
        /// VmHWM of the steps alone (reset after building the step; 0 where the kernel refuses), largest over ranks, MB.
        public var stepPeakResidentMB = 0.0
        /// Pss and shared pages (smaps_rollup) at the end of the last timed step, largest over ranks, MB.
        public var peakPSSMB = 0.0, sharedMB = 0.0
        /// The largest PSS sampled inside the timed steps where memory peaks (`StepMemoryProbe`: each
        /// policy backward's start, each `--zero 2` bucket about to go), largest over ranks, MB; and
        /// the RSS of that sample. The samples' CPU time is left out of the step's CPU figures.
        public var stepPeakPSSMB = 0.0, stepPeakPSSSampleRSSMB = 0.0
    }

    /// Runs `warmupSteps + timedSteps` steps of a `DPOStep` built from the preset in memory, or
    /// loaded from `modelDirectory` / the preset written into `ioDirectory`; the first
    /// `warmupSteps` are not timed. With `ioDirectory`, rank 0 then times a checkpoint save.
    public static func run(_ o: Options, communicator: Communicator = SingleProcessCommunicator()) throws -> Result {
        let T = o.sequenceLength
        guard T >= 8, o.batchPairs >= 1, o.timedSteps >= 1, o.warmupSteps >= 0 else {
            throw TrainingError.invalidOption("bench: --seq must be >= 8 and --batch-pairs, steps >= 1")
        }
        guard o.promptFraction >= 0, o.promptFraction < 1 else {
            throw TrainingError.invalidOption("bench: --prompt-fraction must be in [0, 1), got \(o.promptFraction)")
        }
        if o.ioDirectory != nil, o.zeroStage != 0 || o.loraRank > 0 {
            throw TrainingError.invalidOption("bench: --io times the full fine-tuning checkpoint of --zero 0; drop --zero 1|2 / --lora-r")
        }
        BLAS.ensureBestCore()
        let previousThreads = BLAS.threads
        if let threads = o.threads { BLAS.threads = threads }
        defer { BLAS.threads = previousThreads }
        let io = try o.ioDirectory.map { try makeIODirectory(under: $0, communicator: communicator) }
        defer { if let io, communicator.isPrimary, !o.keepIOFiles { try? FileManager.default.removeItem(at: io) } }
        let config = try benchConfig(o)
        let steps = o.warmupSteps + o.timedSteps
        let (pairs, paddingId) = try syntheticPairs(o, count: o.batchPairs * communicator.size * steps)
        let (step, load) = try buildStep(o, config: config, io: io, pairs: pairs, paddingId: paddingId, communicator: communicator)
        let setup = MemoryRollup.current(), setupPeakMB = ModelBenchmark.peakResidentMB()
        let stepPeakKnown = MemoryRollup.resetPeakResident()

        var stepSeconds: [Double] = [], cpuSeconds: [Double] = [], phases: [StepPhaseSeconds] = []
        var systemSeconds: [Double] = [], minorFaults: [Double] = []
        // Peak RSS through the timed steps.
        var timedPeakMB = 0.0
        let clock = ContinuousClock()
        let probe = StepMemoryProbe()
        for index in 0..<steps {
            if index == o.warmupSteps { step.memoryProbe = probe.sample }
            // Rank r takes pairs r, r+W, ... of this step's global batch, as the trainer's sampler would.
            let mine = Array(stride(from: index * o.batchPairs * communicator.size + communicator.rank,
                                    to: (index + 1) * o.batchPairs * communicator.size, by: communicator.size))
            let start = clock.now, cpuStart = ModelBenchmark.processCPUSeconds(), usageStart = ResourceUsage.now()
            let probeStart = (cpu: probe.cpuSeconds, system: probe.systemSeconds)
            let batch = PreferenceBatch(pairs: pairs, indices: mine, paddingId: paddingId)
            let result = try step.step(microBatches: [batch], learningRate: 1e-6)
            // The slowest rank's wall time (the all-reduces inside the step keep the ranks together).
            stepSeconds.append(communicator.max(Int64((DPOStep.seconds(clock.now - start) * 1e9).rounded())).asSeconds)
            // Less the probe's samples (thread figures: their tick rounding can exceed the process's, hence the floor at 0).
            cpuSeconds.append(max(0, ModelBenchmark.processCPUSeconds() - cpuStart - (probe.cpuSeconds - probeStart.cpu)))
            let usage = ResourceUsage.now() - usageStart
            systemSeconds.append(max(0, usage.systemSeconds - (probe.systemSeconds - probeStart.system)))
            if index >= o.warmupSteps { probe.sample() }  // the step's end too (after its CPU reading)
            minorFaults.append(Double(usage.minorFaults))
            phases.append(result.phases)
            if index == steps - 1 { timedPeakMB = ModelBenchmark.peakResidentMB() }
        }
        let end = MemoryRollup.current()
        func largest(_ kib: Int) -> Double { Double(communicator.max(Int64(kib))) / 1024 }
        var save: SaveFigures?
        if let io {
            if communicator.isPrimary {
                save = try timeSave(step: step, config: config, modelDirectory: o.modelDirectory ?? io.appendingPathComponent("model"), under: io)
            }
            quietBarrier(communicator)
        }
        let window = o.warmupSteps..<steps
        func median(_ values: [Double]) -> Double { values.isEmpty ? .nan : values.sorted()[values.count / 2] }
        let timedPhases = Array(phases[window])
        var phaseMedians = StepPhaseSeconds()
        for key in [\StepPhaseSeconds.data, \.referenceForward, \.policyForward, \.backward, \.allReduceWait, \.optimizer, \.weightGather] {
            phaseMedians[keyPath: key] = median(timedPhases.map { $0[keyPath: key] })
        }
        let medianCPU = median(Array(cpuSeconds[window]))
        let perRank = communicator.sum([medianCPU, median(Array(systemSeconds[window])), median(Array(minorFaults[window]))])
        let timed = Array(stepSeconds[window])

        let pairCount = o.batchPairs * communicator.size
        let work = stepFLOPs(o, config: config, ranks: communicator.size)
        let peak = Double(communicator.max(Int64(max(setupPeakMB, timedPeakMB) * 1024))) / 1024
        var result = Result(
            tokensPerStep: 2 * pairCount * T, pairsPerStep: pairCount, medianStepSeconds: median(timed),
            medianStepCPUSeconds: perRank[0], phases: phaseMedians,
            plainStepFLOPs: work.plain, executedStepFLOPs: work.executed,
            timedSteps: timed.count, peakResidentMB: peak, medianStepSystemSeconds: perRank[1], medianStepMinorFaults: perRank[2],
            load: load, save: save)
        result.setupRSSMB = largest(setup.rss)
        result.setupPSSMB = largest(setup.pss)
        result.stepPeakResidentMB = stepPeakKnown ? Double(communicator.max(Int64(timedPeakMB * 1024))) / 1024 : 0
        result.peakPSSMB = largest(end.pss)
        step.memoryProbe = nil
        // The rank with the largest sampled PSS reports its sample's RSS beside it.
        let peakPSS = communicator.max(Int64(probe.peak.pss))
        result.stepPeakPSSMB = Double(peakPSS) / 1024
        result.stepPeakPSSSampleRSSMB = Double(communicator.max(Int64(probe.peak.pss) == peakPSS ? Int64(probe.peak.rss) : 0)) / 1024
        result.sharedMB = largest(end.shared)
        return result
    }

    /// FLOPs of one step over `ranks` ranks (the anchor's count, see the type's comment): the plain
    /// step's, and what runs with `o`'s switches (shared prompts once, no reference forward with
    /// `precomputeReference`, no base-weight gradient under LoRA).
    static func stepFLOPs(_ o: Options, config: LlamaConfig, ranks: Int) -> (plain: Double, executed: Double) {
        let T = o.sequenceLength, promptLength = o.promptLength
        let pairCount = o.batchPairs * ranks
        let plainTokens = Double(2 * pairCount * T)
        let sharedTokens = o.sharePrompt ? Double(pairCount * (2 * T - promptLength)) : plainTokens
        let n = Double(ModelBenchmark.matmulParameters(config))
        let attentionPerToken = Double(config.numHiddenLayers * T * config.qDim) / 2
        // LoRA computes no base-weight gradient: 4N per trained token (the adapters' r-wide products are left out).
        let trainedPerToken = o.loraRank > 0 ? 4 * n : 6 * n
        func flops(policy: Double, reference: Double) -> Double {
            policy * (trainedPerToken + 12 * attentionPerToken) + reference * (2 * n + 4 * attentionPerToken)
        }
        return (flops(policy: plainTokens, reference: plainTokens),
                flops(policy: sharedTokens, reference: o.precomputeReference ? 0 : sharedTokens))
    }

    /// The step, built from the preset's seed-1 weights in memory, or (timed) from a model
    /// directory: `modelDirectory`, or the preset written into `io/model` by rank 0 first.
    static func buildStep(
        _ o: Options, config: LlamaConfig, io: URL?, pairs: [EncodedPair], paddingId: Int32, communicator: Communicator
    ) throws -> (DPOStep, LoadFigures?) {
        var directory = o.modelDirectory
        if directory == nil, let io {
            let written = io.appendingPathComponent("model")
            var problem = ""
            if communicator.isPrimary {
                do { try writePresetModel(config: config, to: written) } catch { problem = "\(error)" }
            }
            if communicator.anyRank(!problem.isEmpty) {
                throw TrainingError.output("bench: cannot write the preset model into \(written.path)" + (problem.isEmpty ? " (on rank 0)" : ": \(problem)"))
            }
            directory = written
        }
        guard let directory else {
            let weights = WeightInitializer(seed: 1).weights(for: config)
            return (try makeStep(o, config: config, weights: weights, pairs: pairs, paddingId: paddingId, communicator: communicator), nil)
        }
        let clock = ContinuousClock(), start = clock.now, usage = ResourceUsage.now()
        var (loaded, weights) = try TrainingInputs.loadModel(directory.path, flag: o.modelDirectory == nil ? "bench" : "--model")
        loaded.maxPositionEmbeddings = config.maxPositionEmbeddings
        let step = try makeStep(o, config: loaded, weights: weights, pairs: pairs, paddingId: paddingId, communicator: communicator)
        weights = []
        return (step, LoadFigures(seconds: DPOStep.seconds(clock.now - start), usage: ResourceUsage.now() - usage))
    }

    /// The config of `o`'s model directory or preset, with positions for its rows; refused when
    /// its vocabulary cannot hold the synthetic rows' byte-tokenizer ids.
    static func benchConfig(_ o: Options) throws -> LlamaConfig {
        var config = try o.modelDirectory.map { try loadConfig($0) } ?? o.preset.config
        config.maxPositionEmbeddings = max(config.maxPositionEmbeddings, o.sequenceLength + 1)
        guard config.vocabSize >= 259 else {
            throw TrainingError.invalidOption("bench: the model's vocab_size \(config.vocabSize) is below the byte tokenizer's 259 ids of the synthetic rows")
        }
        return config
    }

    /// `config.json` of `--model`, with an error naming the directory.
    static func loadConfig(_ directory: URL) throws -> LlamaConfig {
        do { return try ModelDirectory.loadConfig(directory) } catch {
            throw TrainingError.model("--model \(directory.path): \(error)")
        }
    }

    /// A fresh directory for this run's files under `parent` (same name on every rank: rank 0's pid).
    static func makeIODirectory(under parent: URL, communicator: Communicator) throws -> URL {
        let job = Int(communicator.sum([communicator.isPrimary ? Double(getpid()) : 0])[0])
        let url = parent.appendingPathComponent("dpo-bench-io-\(job)")
        var problem = ""
        if communicator.isPrimary {
            do { try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true) } catch { problem = "\(error)" }
        }
        if communicator.anyRank(!problem.isEmpty) {
            throw TrainingError.output("bench: cannot create \(url.path) for --io: \(problem.isEmpty ? "failed on rank 0" : problem)")
        }
        return url
    }

    /// Pairs encoded by the built-in byte tokenizer (in memory) exactly as `dpo train` encodes
    /// them: one token per ASCII letter, `promptLength` prompt tokens, completions of
    /// `completionLength` tokens with the end token; chosen and rejected differ from their first letter.
    static func syntheticPairs(count: Int, promptLength: Int, completionLength: Int) throws -> (pairs: [EncodedPair], paddingId: Int32) {
        let tokenizer = try TokenizerFiles.byteTokenizer()
        var options = TrainingParameters()
        options.maxLength = promptLength + completionLength
        options.maxPromptLength = promptLength
        let encoder = try PreferenceEncoder(tokenizer: tokenizer, options: options.encodingOptions)
        let pairs = try (0..<count).map { i -> EncodedPair in
            func text(_ n: Int, _ salt: Int) -> String {
                String((0..<n).map { Character(UnicodeScalar(UInt8(97 + (i * 7 + $0 * 3 + salt) % 26))) })
            }
            let example = PreferenceExample.standard(
                prompt: text(promptLength, 0), chosen: text(completionLength - 1, 1), rejected: text(completionLength - 1, 2))
            guard case .encoded(let pair) = try encoder.encode(example, index: i).outcome else {
                throw TrainingError.invalidOption("bench: a synthetic pair of \(promptLength + completionLength) tokens was dropped")
            }
            return pair
        }
        return (pairs, tokenizer.paddingId)
    }

    /// `count` synthetic pairs of rows shaped as `o` says (`sequenceLength` input tokens, `promptLength` of prompt).
    static func syntheticPairs(_ o: Options, count: Int) throws -> (pairs: [EncodedPair], paddingId: Int32) {
        try syntheticPairs(count: count, promptLength: o.promptLength, completionLength: o.sequenceLength + 1 - o.promptLength)
    }

    /// The step the trainer would build for these options from `weights`: a frozen reference
    /// with the same weights (its sums precomputed with `precomputeReference`), AdamW.
    static func makeStep(_ o: Options, config: LlamaConfig, weights: [Float], pairs: [EncodedPair], paddingId: Int32,
                         communicator: Communicator) throws -> DPOStep {
        if o.loraRank > 0 {
            return try makeLoRAStep(o, config: config, weights: weights, pairs: pairs, paddingId: paddingId, communicator: communicator)
        }
        let policy = try LlamaModel(config: config, precision: o.precision, trainable: true)
        policy.gradientCheckpointing = o.gradientCheckpointing
        let shared = o.sharedReference && !o.precomputeReference
            ? HostSharedReference.model(config: config, precision: o.precision, weights: weights, communicator: communicator) { _ in }
            : nil
        let referenceModel = try shared ?? LlamaModel(config: config, precision: o.precision, trainable: false)
        if shared == nil { weights.withUnsafeBufferPointer { referenceModel.loadWeights($0) } }
        var reference = ReferenceLogps.model(referenceModel)
        if o.precomputeReference {
            let sums = ReferenceLogpsCache.compute(model: referenceModel, pairs: pairs, batchPairs: o.batchPairs, paddingId: paddingId, communicator: communicator)
            reference = .cached(chosen: sums.chosen, rejected: sums.rejected)
        }
        var defaults = TrainingParameters()
        defaults.precision = o.precision
        let options = DPOStep.Options(
            loss: defaults.loss, maxGradNorm: defaults.maxGradNorm, sharePrompt: o.sharePrompt, bucketMegabytes: o.resolvedBucketMegabytes,
            wireType: o.allreduceDType ?? (o.precision == .fp16 ? .fp16 : .fp32), zeroStage: o.zeroStage)
        let shard = ParameterShards.ranges(total: weights.count, ranks: communicator.size)[communicator.rank]
        return try DPOStep(
            policy: policy, reference: reference, masterWeights: weights,
            optimizer: o.zeroStage != 0
                ? FlatOptimizer(options: defaults.optimizer, layout: policy.layout, range: shard)
                : FlatOptimizer(options: defaults.optimizer, layout: policy.layout),
            lossScaler: DynamicLossScaler(enabled: o.precision == .fp16), options: options, communicator: communicator)
    }
}

private extension Int64 {
    var asSeconds: Double { Double(self) * 1e-9 }
}
