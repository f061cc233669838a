import Distributed
import Foundation
import Kernels
import Llama
import Preference
import Training

/// fp16 against fp32 with the host's drift taken out, for `dpo bench dpo --compare-precision`.
///
/// Separate runs of the two precisions could not tell a 2% difference on a shared host whose
/// speed swings by 10% over minutes (issue 17's "fp16 >= fp32"). Here both steps are built in
/// one process from the same weights and take turns on the same rows, in ABBA order: round r
/// runs fp32 first when r is even and fp16 first when r is odd, so a slow drift of the clock or
/// a neighbour's load falls on both alike. The figure is the ratio of the precisions' total CPU
/// seconds over the rounds, with each round's ratio beside it to show the spread.
public enum PrecisionComparison {
    /// One step of one precision.
    public struct Timing: Sendable {
        public var seconds: Double
        /// Process CPU seconds of the step (all threads).
        public var cpuSeconds: Double
        /// The step's objective (the batch's DPO loss): both precisions train the same thing.
        public var objective: Double
    }

    /// Both precisions' steps on one batch.
    public struct Round: Sendable {
        public var fp16First: Bool
        public var fp32: Timing
        public var fp16: Timing
        public var cpuRatio: Double { fp16.cpuSeconds / fp32.cpuSeconds }
    }

    public struct Result: Sendable {
        public var rounds: [Round]
        /// FLOPs of one step (both precisions run the same work).
        public var plainStepFLOPs: Double
        public var executedStepFLOPs: Double
        public var tokensPerStep: Int

        /// fp16 / fp32 of the CPU seconds (and wall seconds) summed over the rounds.
        public var totalCPURatio: Double { total(\.fp16.cpuSeconds) / total(\.fp32.cpuSeconds) }
        public var totalWallRatio: Double { total(\.fp16.seconds) / total(\.fp32.seconds) }
        /// The median of the rounds' fp16 / fp32 CPU ratios.
        public var medianCPURatio: Double {
            let sorted = rounds.map(\.cpuRatio).sorted()
            return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
        }
        /// Rounds where the fp16 step took less CPU time than the fp32 step.
        public var fp16FasterRounds: Int { rounds.filter { $0.cpuRatio < 1 }.count }

        public func total(_ figure: KeyPath<Round, Double>) -> Double { rounds.reduce(0) { $0 + $1[keyPath: figure] } }
    }

    /// Builds an fp32 and an fp16 step (as `dpo bench dpo` builds one: `o`'s preset or model
    /// directory, rows, switches; `o.precision` is not used), runs `o.warmupSteps` untimed steps of
    /// each, then `o.timedSteps` rounds. One process: `report` sees each round as it ends.
    public static func run(_ o: DPOStepBenchmark.Options, report: (Int, Round) -> Void = { _, _ in }) throws -> Result {
        guard o.timedSteps >= 1, o.warmupSteps >= 0, o.batchPairs >= 1, o.sequenceLength >= 8 else {
            throw TrainingError.invalidOption("bench --compare-precision: --steps and --batch-pairs must be >= 1 and --seq >= 8")
        }
        guard o.ioDirectory == nil, !o.sharedReference else {
            throw TrainingError.invalidOption("bench --compare-precision times the steps only: drop --io and --shared-reference")
        }
        BLAS.ensureBestCore()
        let previousThreads = BLAS.threads
        if let threads = o.threads { BLAS.threads = threads }
        defer { BLAS.threads = previousThreads }

        let config = try DPOStepBenchmark.benchConfig(o)
        let weights = try o.modelDirectory.map { try TrainingInputs.loadModel($0.path, flag: "--model").weights }
            ?? WeightInitializer(seed: 1).weights(for: config)
        let (pairs, paddingId) = try DPOStepBenchmark.syntheticPairs(o, count: o.batchPairs * (o.warmupSteps + o.timedSteps))
        func batch(_ index: Int) -> PreferenceBatch {
            PreferenceBatch(pairs: pairs, indices: Array(index * o.batchPairs..<(index + 1) * o.batchPairs), paddingId: paddingId)
        }
        func makeStep(_ precision: Precision) throws -> DPOStep {
            var options = o
            options.precision = precision
            return try DPOStepBenchmark.makeStep(options, config: config, weights: weights, pairs: pairs, paddingId: paddingId,
                                                 communicator: SingleProcessCommunicator())
        }
        let fp32 = try makeStep(.fp32), fp16 = try makeStep(.fp16)

        for index in 0..<o.warmupSteps {
            _ = try time(fp32, batch(index))
            _ = try time(fp16, batch(index))
        }
        var rounds: [Round] = []
        for round in 0..<o.timedSteps {
            let rows = batch(o.warmupSteps + round), fp16First = round % 2 == 1
            let first = try time(fp16First ? fp16 : fp32, rows)
            let second = try time(fp16First ? fp32 : fp16, rows)
            rounds.append(Round(fp16First: fp16First, fp32: fp16First ? second : first, fp16: fp16First ? first : second))
            report(round, rounds[round])
        }
        let work = DPOStepBenchmark.stepFLOPs(o, config: config, ranks: 1)
        return Result(rounds: rounds, plainStepFLOPs: work.plain, executedStepFLOPs: work.executed,
                      tokensPerStep: 2 * o.batchPairs * o.sequenceLength)
    }

    /// One training step on `batch`, timed.
    static func time(_ step: DPOStep, _ batch: PreferenceBatch) throws -> Timing {
        let clock = ContinuousClock(), start = clock.now, cpuStart = ModelBenchmark.processCPUSeconds()
        let result = try step.step(microBatches: [batch], learningRate: 1e-6)
        return Timing(seconds: DPOStep.seconds(clock.now - start), cpuSeconds: ModelBenchmark.processCPUSeconds() - cpuStart,
                      objective: result.objective)
    }
}
