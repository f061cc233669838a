import Foundation
import Kernels
import Llama
import Preference

/// The start-up summary and plan line of a prepared run (what the README promises before step 1).
enum StartupFacts {
    /// - Parameter runtimeBytes: the process's resident bytes before loading (`ProcessMemory.residentBytes`).
    static func summary(of run: PreparedRun, runtimeBytes: Int) -> ProgressStartupSummary {
        let p = run.parameters, config = run.config
        let parameterCount = run.step.masterWeights.count
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

    /// Estimated peak bytes of one rank, from the shapes (P parameters, N = 2 x pairs x longest row tokens of a micro-batch).
    static func memoryEstimate(of run: PreparedRun, runtimeBytes: Int) -> ProgressStartupSummary.MemoryEstimate {
        let p = run.parameters, c = run.config
        let parameters = run.step.masterWeights.count
        let workingBytes = p.precision == .fp16 ? 2 : 4
        // Master weights (fp32) + the policy's working copy (LoRA: the frozen base + fp32 adapters and their master copy).
        let weights = run.step.policy.adapters == nil ? parameters * (4 + workingBytes) : ParameterLayout(config: c).totalCount * workingBytes + parameters * 8
        // Gradients (fp32) + optimizer moments.
        let optimizer = parameters * 4 + (run.step.optimizer.firstMoment.count + run.step.optimizer.secondMoment.count) * 4
        let longest = min(p.maxLength, run.trainPairs.map(\.longestRowLength).max() ?? p.maxLength)
        let tokens = 2 * p.batchPairs * longest
        let h = c.hiddenSize, f = c.intermediateSize, q = c.qDim, k = c.kvDim, L = c.numHiddenLayers
        // Saved for backward per layer and token: layer input, q/k/v, attention output, middle stream, gate/up.
        let savedPerToken = L * (h + q + 2 * k + q + h + 2 * f) * workingBytes
        // Float32 scratch per token: forward (normed, SwiGLU, rstd) and backward (streams, MLP, q/k/v, attention).
        let scratchPerToken = 4 * (h + f + 2 * L + 1 + 2 * h + 3 * f + q + 2 * k + q)
        // A logged step also computes the full logits of its last micro-batch (TRL's `logits/*`).
        let logits = tokens * c.vocabSize * 4
        let activations = tokens * (savedPerToken + scratchPerToken) + logits
        let reference: Int
        switch run.step.reference {
        case .none: reference = 0
        case .model: reference = ParameterLayout(config: c).totalCount * workingBytes + tokens * 4 * (2 * h + f)
        case .baseModel: reference = tokens * 4 * (2 * h + f)  // the policy's own base weights: only scratch
        case .cached(let chosen, let rejected): reference = (chosen.count + rejected.count) * 4
        }
        return .init(weightsBytes: weights, optimizerBytes: optimizer, activationsBytes: activations, referenceBytes: reference,
                     runtimeBytes: runtimeBytes)
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
    public static func peakResidentBytes() -> Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
              let kilobytes = line.split(separator: " ").compactMap({ Int($0) }).first
        else { return 0 }
        return kilobytes * 1024
    }
}
