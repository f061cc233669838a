import Foundation
import Kernels
import Llama
import Preference

/// The start-up summary and plan line of a prepared run (what the README promises before step 1).
enum StartupFacts {
    /// - Parameter runtimeBytes: the process's resident bytes before loading (`ProcessMemory.residentBytes`).
    static func summary(of run: PreparedRun, runtimeBytes: Int) -> ProgressStartupSummary {
        let p = run.parameters, config = run.config
        let parameterCount = run.step.parameterCount
        let lossDescription = p.loss.kind == .sft ? "sft" : "\(p.loss.kind.rawValue), beta \(p.loss.beta)"
        var summary = ProgressStartupSummary(
            modelDescription: "\(p.modelDirectory) (\(config.numHiddenLayers) layers, hidden \(config.hiddenSize), vocab \(config.vocabSize))",
            parameterCount: parameterCount, worldSize: run.communicator.size, threadsPerRank: BLAS.threads,
            pairsPerRank: p.batchPairs, gradientAccumulation: p.gradAccum, precision: p.precision.rawValue,
            lossDescription: lossDescription, trainPairs: run.dataCounts.trainPairs, evalPairs: run.dataCounts.evalPairs,
            droppedPairs: run.dataCounts.dropped, totalSteps: run.plan.totalSteps,
            epochs: Double(run.plan.totalSteps) / Double(run.plan.stepsPerEpoch),
            memory: memoryEstimate(of: run, runtimeBytes: runtimeBytes))
        summary.runningGlobalBatch = runningGlobalBatch(of: run)
        return summary
    }

    /// Pairs one full step takes over all ranks: the asked batch, or every (padded) pair of an
    /// epoch when the data holds fewer (`--batch-pairs 100` on 8 pairs trains 8 a step).
    static func runningGlobalBatch(of run: PreparedRun) -> Int {
        let batches = run.plan.batches
        return min(batches.batchSize, batches.examplesPerRank) * batches.worldSize
    }

    /// Estimated peak bytes of one rank, from the shapes (N = 2 x pairs x longest row tokens of a micro-batch).
    static func memoryEstimate(of run: PreparedRun, runtimeBytes: Int) -> ProgressStartupSummary.MemoryEstimate {
        let p = run.parameters
        let longest = min(p.maxLength, run.trainPairs.map(\.longestRowLength).max() ?? p.maxLength)
        let reference: MemoryGeometry.Reference
        switch run.step.reference {
        case .none: reference = .none
        case .model: reference = .model
        case .cached(let chosen, let rejected): reference = .cached(pairs: (chosen.count + rejected.count) / 2)
        case .baseModel: reference = .baseModel
        }
        var geometry = MemoryGeometry(
            config: run.config, precision: p.precision, batchPairs: p.batchPairs, longestRow: longest,
            gradientCheckpointing: run.step.policy.gradientCheckpointing,
            optimizerStateCount: run.step.optimizer.firstMoment.count + run.step.optimizer.secondMoment.count, reference: reference,
            trainableCount: run.step.policy.adapters == nil ? nil : run.step.parameterCount,
            masterCount: run.step.masterWeightCount)
        geometry.reductionBytes = FitCheck.reductionBytes(p, trained: run.step.parameterCount, worldSize: run.communicator.size)
        return geometry.estimate(runtimeBytes: runtimeBytes)
    }

    /// `global batch 4 pairs (2 x 1 x 2 ranks)`, or the pairs that run when the data is smaller.
    static func batchText(of run: PreparedRun) -> String {
        let p = run.parameters, worldSize = run.communicator.size
        let asked = p.batchPairs * p.gradAccum * worldSize, running = runningGlobalBatch(of: run)
        let product = "\(p.batchPairs) x \(p.gradAccum) x \(worldSize) ranks"
        guard running < asked else { return "global batch \(asked) pairs (\(product))" }
        return "global batch \(running) pairs (all \(run.dataCounts.trainPairs) train pairs; \(product) asked for \(asked))"
    }

    /// `training 10 step(s) (0/10 done): ...`: the plan in one line.
    static func planLine(of run: PreparedRun) -> String {
        let p = run.parameters, worldSize = run.communicator.size, start = run.state.globalStep, total = run.plan.totalSteps
        return "training \(total - start) step(s) (\(start)/\(total) done): \(run.plan.stepsPerEpoch) steps/epoch, "
            + batchText(of: run) + ", "
            + "loss \(p.loss.kind.rawValue), beta \(p.loss.beta), precision \(p.precision.rawValue)"
            + (worldSize > 1 ? ", all-reduce \(run.step.wireType.rawValue), \(BLAS.threads) BLAS thread(s) per rank" : "")
    }
}

/// This process's memory, from /proc (0 where there is none).
public enum ProcessMemory {
    /// Resident bytes now (`/proc/self/statm`).
    public static func residentBytes() -> Int {
        guard let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = statm.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    /// The largest resident bytes so far (`VmHWM` of `/proc/self/status`).
    public static func peakResidentBytes() -> Int { ModelBenchmark.peakResidentKilobytes() * 1024 }
}
