import Distributed
import Foundation
import Kernels
import Llama
import Preference

/// One optimizer step of the preference loss family on data-parallel ranks: the step a
/// newcomer reads to see what training does. It owns the policy, the reference (a model or
/// precomputed log-probs), the fp32 master weights, the flat gradient buffer and its
/// `GradientReducer`, the optimizer and the loss scaler; it touches no file, no environment
/// and prints nothing.
///
///     let step = try DPOStep(policy: policy, reference: .model(reference), masterWeights: w,
///                            optimizer: FlatOptimizer(options: o, layout: policy.layout),
///                            lossScaler: DynamicLossScaler(enabled: false), options: options,
///                            communicator: SingleProcessCommunicator())
///     let result = try step.step(microBatches: batches, learningRate: 1e-6)
///
/// Data flow of `step` (B pairs per micro-batch, 2B rows of seqLen tokens, P parameters):
/// 1. `stepCounts`: the global pair, chosen-token and input-token counts (one all-reduce of 3),
///    which fix the loss normalizer before the first micro-batch.
/// 2. per micro-batch: `LlamaModel.forward` -> token log-probs [2B*seqLen] -> `sequenceLogps` [B]+[B];
///    `ReferenceLogps.sums` [B]+[B]; `PreferenceLoss.compute` -> d loss / d sequence sums;
///    `tokenGradients` x (loss scale x world size) -> `LlamaModel.backward` accumulating into
///    the gradients [P]. On the last micro-batch backward hands each finished layer group to
///    `GradientReducer.groupReady`, so its bucketed all-reduce overlaps the rest of backward.
///    (`--zero 2`: every micro-batch is reduce-scattered so, and its shard of the mean added up
///    in `PartitionedGradients`; no rank holds the whole gradient vector.)
/// 3. `GradientReducer.finish` (gradients now the mean over ranks), the norm of the gradients
///    unscaled by 1/loss scale (`GradientClipping.globalNorm`) and the clipping factor, agree
///    on finiteness (loss and gradients) over ranks.
/// 4. `DynamicLossScaler.update`: finite -> `FlatOptimizer.step`, one fused sweep that unscales
///    and clips the gradients, updates the master weights and writes the working precision copy
///    into the policy; not finite -> skipped everywhere.
public final class DPOStep {
    /// What shapes the step besides the models.
    public struct Options: Sendable {
        public var loss: PreferenceLossOptions
        /// `--max-grad-norm` (<= 0: no clipping).
        public var maxGradNorm: Double
        /// `--share-prompt`: each pair's prompt runs once for chosen and rejected.
        public var sharePrompt: Bool
        /// `--bucket-mb`: largest all-reduce bucket.
        public var bucketMegabytes: Double
        /// Gradients on the wire (`--allreduce-dtype`).
        public var wireType: GradientReducer.WireType
        /// `--zero`: 0 = every rank holds the whole optimizer state (all-reduce); 1 = ZeRO stage 1,
        /// each rank owns one shard of it (`ShardedOptimizer`; reduce-scatter and all-gather);
        /// 2 = ZeRO stage 2, the gradients partitioned too (`PartitionedGradients`; on one rank as 1).
        public var zeroStage: Int

        public init(loss: PreferenceLossOptions, maxGradNorm: Double = 1, sharePrompt: Bool = false,
                    bucketMegabytes: Double = 25, wireType: GradientReducer.WireType = .fp32, zeroStage: Int = 0) {
            self.loss = loss
            self.maxGradNorm = maxGradNorm
            self.sharePrompt = sharePrompt
            self.bucketMegabytes = bucketMegabytes
            self.wireType = wireType
            self.zeroStage = zeroStage
        }
    }

    public let policy: LlamaModel
    public let reference: ReferenceLogps
    /// The optimizer; with `--zero 1` the one of this rank's shard (`sharded.optimizer`).
    public let optimizer: FlatOptimizer
    public let communicator: Communicator
    public let options: Options
    public var lossScaler: DynamicLossScaler
    /// The fp32 master weights [P] the optimizer updates; the policy runs a copy in its precision.
    /// With LoRA adapters attached to the policy, P is the adapter vector (the base stays frozen).
    /// Empty with `--zero 1`: each rank then holds only its shard (`sharded.masterShard`), and
    /// `gatherMasterWeights()` assembles the whole. A copy (see `withMasterWeights`).
    public var masterWeights: [Float] { master.array }
    /// The storage of `masterWeights`: one long-lived buffer [P] ([0] with `--zero 1`).
    private let master: ScalarBuffer<Float>
    /// ZeRO-1's sharded optimizer state and reduction (`--zero 1`); nil with `--zero 0`.
    public let sharded: ShardedOptimizer?
    /// Steps taken so far (skipped ones count): the 0-based index of the next step.
    public var stepIndex: Int
    /// Test-only (fault injection); nil in every product run.
    public var faults: StepFaults?
    /// The bench's peak-memory probe (nil in training): called where a step's resident memory
    /// peaks, at the start of each policy backward (every activation saved) and as each gradient
    /// bucket is about to go (with `--zero 2` its window pages all written; the collectives in
    /// flight hold their MPI buffers).
    public var memoryProbe: (() -> Void)? {
        didSet {
            if let sharded { sharded.bucketFilled = memoryProbe } else { reducer?.bucketFilled = memoryProbe }
        }
    }

    /// The flat gradient buffer [P]; `reducer` keeps its address, so it is allocated once and never moves.
    /// [0] with `--zero 2` on several ranks: backward then writes into `partitioned.window`.
    private let gradientStorage: ScalarBuffer<Float>
    /// ZeRO-2's gradients (`--zero 2` on 2+ ranks): reduced after every micro-batch into the shard.
    private let partitioned: PartitionedGradients?
    private var gradients: UnsafeMutableBufferPointer<Float> { partitioned?.gradients ?? gradientStorage.buffer }
    /// The all-reduce of `--zero 0` (nil with `--zero 1`, which reduce-scatters through `sharded`).
    private let reducer: GradientReducer?
    private let clock = ContinuousClock()

    /// - Parameters:
    ///   - masterWeights: the fp32 weights the policy starts from (loaded into it here).
    ///   - optimizer: over the whole vector, or with `options.zeroStage == 1` over this rank's
    ///     shard (`ParameterShards.ranges(total: P, ranks: N)[rank]`).
    ///   - stepIndex: steps already taken (a resumed run's global step).
    public init(
        policy: LlamaModel, reference: ReferenceLogps, masterWeights: [Float], optimizer: FlatOptimizer,
        lossScaler: DynamicLossScaler, options: Options, communicator: Communicator, stepIndex: Int = 0
    ) throws {
        precondition(masterWeights.count == policy.trainableCount, "master weights [\(masterWeights.count)] do not fit the policy")
        self.policy = policy
        self.reference = reference
        master = masterWeights.withUnsafeBufferPointer {
            ScalarBuffer(copying: options.zeroStage != 0 ? UnsafeBufferPointer(rebasing: $0[0..<0]) : $0)
        }
        self.optimizer = optimizer
        self.lossScaler = lossScaler
        self.options = options
        self.communicator = communicator
        self.stepIndex = stepIndex
        partitioned = options.zeroStage == 2 && communicator.size > 1
            ? try PartitionedGradients(communicator: communicator, count: masterWeights.count, groupRanges: policy.trainableGroupRanges,
                                       bucketMegabytes: options.bucketMegabytes, wireType: options.wireType,
                                       tiedHead: policy.adapters == nil && policy.config.tieWordEmbeddings ? policy.trainableGroupRanges[0] : nil,
                                       untiedHead: policy.adapters == nil ? policy.layout["lm_head.weight"]?.range : nil)
            : nil
        // Zeroed pages from the mapping; `step` zeroes it again before each backward.
        gradientStorage = ScalarBuffer(count: partitioned == nil ? masterWeights.count : 0)
        let buffer = gradientStorage.buffer
        if let partitioned {
            reducer = nil
            sharded = try masterWeights.withUnsafeBufferPointer {
                try ShardedOptimizer(communicator: communicator, masterWeights: $0, optimizer: optimizer, reduction: partitioned)
            }
        } else if options.zeroStage != 0 {
            reducer = nil
            sharded = try masterWeights.withUnsafeBufferPointer {
                try ShardedOptimizer(
                    communicator: communicator, masterWeights: $0, optimizer: optimizer, gradients: buffer,
                    groupRanges: policy.trainableGroupRanges, bucketMegabytes: options.bucketMegabytes, wireType: options.wireType)
            }
        } else {
            sharded = nil
            reducer = try GradientReducer(
                communicator: communicator, gradients: buffer, groupRanges: policy.trainableGroupRanges,
                bucketMegabytes: options.bucketMegabytes, wireType: options.wireType)
        }
        masterWeights.withUnsafeBufferPointer { policy.loadTrainable($0) }
    }

    /// The gradients of the last step as the optimizer saw them (averaged over ranks, unscaled,
    /// clipped): [P], or with `--zero 1` this rank's shard of them.
    public var lastGradients: UnsafeBufferPointer<Float> {
        sharded.map { UnsafeBufferPointer($0.shardGradients) } ?? UnsafeBufferPointer(gradients)
    }

    /// The element type the gradients travel in between ranks.
    public var wireType: GradientReducer.WireType { sharded?.wireType ?? reducer!.wireType }

    /// Parameters the step trains (P): the model's, or the adapter vector's with LoRA.
    public var parameterCount: Int { policy.trainableCount }

    /// fp32 master weights this rank holds: P, or its shard's size with `--zero 1`.
    public var masterWeightCount: Int { sharded?.shard.count ?? master.count }

    /// Runs `body` on the fp32 master weights this rank holds (no copy): [P], or [0] with `--zero 1`.
    public func withMasterWeights<T>(_ body: (UnsafeBufferPointer<Float>) throws -> T) rethrows -> T {
        try master.withUnsafeBufferPointer(body)
    }

    /// The full fp32 master weights [P]. With `--zero 1` a collective (every rank calls it at the
    /// same point) that gathers the shards into a new array.
    public func gatherMasterWeights() -> [Float] {
        sharded?.gatherMasterWeights() ?? masterWeights
    }

    /// One optimizer step on this rank's `microBatches` (gradient accumulation over them).
    /// - Parameter completionLogits: also compute TRL's `logits/*` sums of the last micro-batch
    ///   (one more forward, with the weights before the update; for logged steps only).
    public func step(microBatches: [PreferenceBatch], learningRate: Double, completionLogits: Bool = false) throws -> StepResult {
        var phases = StepPhaseSeconds()
        var phaseStart = clock.now
        func mark(_ phase: WritableKeyPath<StepPhaseSeconds, Double>) {
            let now = clock.now
            phases[keyPath: phase] += Self.seconds(now - phaseStart)
            phaseStart = now
        }
        let counts = stepCounts(microBatches)
        let normalizer = LossNormalizer(globalPairs: counts.pairs, globalChosenTokens: counts.chosenTokens)
        let lossScale = lossScaler.scale
        if let partitioned { partitioned.beginStep() } else { gradientStorage.setToZero() }
        mark(\.data)
        var sums = PreferenceMetricSums()
        var objective = 0.0
        var logits: CompletionLogitSums?
        var earlierNonFinite = false  // --zero 2: a micro-batch before the last had an inf or NaN
        for (index, batch) in microBatches.enumerated() {
            let isLast = index == microBatches.count - 1
            // --zero 2 reduces every micro-batch (no whole-vector buffer to accumulate in).
            objective += try accumulate(batch, normalizer: normalizer, lossScale: lossScale, reduce: isLast || partitioned != nil,
                                        sums: &sums, mark: mark)
            if let partitioned, !isLast {
                earlierNonFinite = partitioned.finish().nonFinite || earlierNonFinite
                mark(\.allReduceWait)
            }
            if isLast && completionLogits { logits = CompletionLogitSums(batch, policy: policy) }
        }
        phaseStart = clock.now  // the logged step's logits (above) are in no phase
        var reduction = sharded?.finish() ?? reducer!.finish()
        reduction.nonFinite = reduction.nonFinite || earlierNonFinite
        mark(\.allReduceWait)
        let update = try applyUpdate(reduction: reduction, lossScale: lossScale, objective: objective, learningRate: learningRate)
        mark(\.optimizer)
        if update.applied, let sharded {  // the update's all-gather, counted apart
            phases.optimizer -= sharded.lastGatherSeconds
            phases.weightGather = sharded.lastGatherSeconds
        }
        stepIndex += 1
        return StepResult(
            applied: update.applied, objective: update.globalObjective, gradNorm: update.gradNorm, lossScale: lossScale,
            learningRate: learningRate, metricSums: sums, globalPairs: counts.pairs, globalInputTokens: counts.inputTokens,
            completionLogits: logits, phases: phases)
    }

    // MARK: - The parts of a step

    /// The step's global pair, chosen-token and input-token counts, summed over ranks.
    private func stepCounts(_ microBatches: [PreferenceBatch]) -> (pairs: Int, chosenTokens: Int, inputTokens: Double) {
        let counts = communicator.sum([
            Double(microBatches.reduce(0) { $0 + $1.pairCount }), Double(microBatches.reduce(0) { $0 + $1.chosenTokenTotal }),
            Double(microBatches.reduce(0) { $0 + $1.inputTokenTotal }),
        ])
        return (Int(counts[0]), Int(counts[1]), counts[2])
    }

    /// Forward, loss and backward of one micro-batch, adding its gradients; returns its share
    /// of the objective. `reduce`: hand finished layer groups to the reducer (last micro-batch).
    private func accumulate(
        _ batch: PreferenceBatch, normalizer: LossNormalizer, lossScale: Double, reduce: Bool,
        sums: inout PreferenceMetricSums, mark: (WritableKeyPath<StepPhaseSeconds, Double>) -> Void
    ) throws -> Double {
        // --share-prompt: each pair's prompt runs once (exact; nil when a batch cannot be packed).
        let shared = options.sharePrompt ? SharedPromptRows(pairedRows: batch.rows) : nil
        let tokenLogps = shared.map { policy.forward($0, saveForBackward: true) } ?? policy.forward(batch.rows, saveForBackward: true)
        let (chosen, rejected) = batch.sequenceLogps(tokenLogps)
        mark(\.policyForward)
        let referenceSums = reference.sums(for: batch, shared: shared)
        mark(\.referenceForward)
        let result = try PreferenceLoss.compute(
            PairLogps(policyChosen: chosen, policyRejected: rejected, referenceChosen: referenceSums.chosen,
                      referenceRejected: referenceSums.rejected, chosenTokens: batch.chosenTokenCounts,
                      rejectedTokens: batch.rejectedTokenCounts),
            options: options.loss, normalizer: normalizer)
        sums.add(result, chosenTokens: batch.chosenTokenCounts)
        // GradientReducer averages over ranks, so each rank's share is scaled by the world size.
        let gradientScale = lossScale * Double(communicator.size)
        let dTokens = batch.tokenGradients(dChosen: result.dPolicyChosen, dRejected: result.dPolicyRejected, scale: gradientScale)
        let groupReady: (Int) -> Void
        if let sharded { groupReady = { sharded.groupReady($0) } } else { let reducer = reducer!; groupReady = { reducer.groupReady($0) } }
        partitioned?.beginBackward()
        memoryProbe?()
        // --zero 2: a tied head's rows are sent a bucket at a time as its vocabulary panels finish.
        let headRows = partitioned.map { partitioned in { (rows: Range<Int>) in partitioned.headRowsFinished(rows) } }
        dTokens.withUnsafeBufferPointer { d in
            policy.backward(dTokenLogps: d, gradients: gradients, groupFinished: reduce ? groupReady : nil,
                            headRowsFinished: reduce ? headRows : nil)
        }
        mark(\.backward)
        return result.objective
    }

    /// Measure the unscaled norm, derive the clipping factor; a non-finite loss or gradient on
    /// any rank skips the step everywhere; otherwise one fused sweep applies unscale, clip,
    /// the update and the working-weight write.
    private func applyUpdate(
        reduction: GradientReducer.Reduction, lossScale: Double, objective: Double, learningRate: Double
    ) throws -> (applied: Bool, gradNorm: Double, globalObjective: Double) {
        faults?.afterReduction?(stepIndex, sharded?.shardGradients ?? gradients)
        let unscale: Float = lossScale != 1 ? Float(1 / lossScale) : 1
        let gradNorm = sharded?.gradientNorm(unscale: unscale) ?? GradientClipping.globalNorm(UnsafeBufferPointer(gradients), unscale: unscale)
        let scaling = FlatOptimizer.GradientScaling(unscale: unscale, clip: GradientClipping.factor(norm: gradNorm, maxNorm: options.maxGradNorm))
        let globalObjective = communicator.sum([objective])[0]
        let finite = !communicator.anyRank(reduction.nonFinite || !gradNorm.isFinite || !globalObjective.isFinite)
        guard lossScaler.update(gradientsFinite: finite) else {
            // `lastGradients` still shows the gradients as the update would have seen them.
            GradientClipping.scale(sharded?.shardGradients ?? gradients, unscale: scaling.unscale, clip: scaling.clip)
            return (false, gradNorm, globalObjective)
        }
        let index = stepIndex, afterUpdate = faults?.afterUpdate
        if let sharded {
            sharded.update(policy: policy, learningRate: learningRate, scaling: scaling,
                           afterUpdate: afterUpdate.map { hook in { hook(index, &$0) } })
        } else {
            updatePlain(learningRate: learningRate, scaling: scaling)
            if let afterUpdate {  // test faults only: a copy, then the working weights again
                var copy = master.array
                afterUpdate(index, &copy)
                copy.withUnsafeBufferPointer { master.update(from: $0) }
                master.withUnsafeBufferPointer { policy.loadTrainable($0) }
            }
        }
        return (true, gradNorm, globalObjective)
    }

    /// `--zero 0`: the fused sweep over all P parameters, writing the policy's working weights
    /// directly; under LoRA the trainable vector is the adapters, loaded after the sweep.
    private func updatePlain(learningRate: Double, scaling: FlatOptimizer.GradientScaling) {
        if policy.adapters != nil {
            optimizer.step(weights: master.buffer, gradients: gradients, scaling: scaling, learningRate: learningRate, output: .none)
            master.withUnsafeBufferPointer { policy.loadTrainable($0) }
            return
        }
        policy.withWorkingWeights { weights in
            let output: AdamWSweep.Output
            switch weights {
            case .fp32(let buffer): output = .fp32(buffer.baseAddress!)
            case .fp16(let buffer): output = .fp16(buffer.baseAddress!)
            }
            optimizer.step(weights: master.buffer, gradients: gradients, scaling: scaling, learningRate: learningRate, output: output)
        }
    }

    /// Seconds of a `ContinuousClock` duration.
    public static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
    }
}

/// Test-only changes to a step (fault injection); the CLI never sets them.
public struct StepFaults {
    /// Called with (0-based step, this rank's averaged gradients) after the reduction, before unscaling.
    public var afterReduction: ((Int, UnsafeMutableBufferPointer<Float>) -> Void)?
    /// Called with (0-based step, the master weights) after an applied update, before the policy loads them.
    public var afterUpdate: ((Int, inout [Float]) -> Void)?

    public init(afterReduction: ((Int, UnsafeMutableBufferPointer<Float>) -> Void)? = nil,
                afterUpdate: ((Int, inout [Float]) -> Void)? = nil) {
        self.afterReduction = afterReduction
        self.afterUpdate = afterUpdate
    }
}
