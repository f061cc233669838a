import Distributed
import Foundation
import Llama
import Preference

/// Builds the run's `DPOStep` from the loaded inputs (or the checkpoint resumed): master
/// weights, optimizer, loss scaler, policy, reference; and the trainer state it continues.
enum StepBuilder {
    struct Built {
        let step: DPOStep
        /// The reference for evaluation (precomputed sums of the eval pairs with --precompute-ref).
        let evalReference: ReferenceLogps
        let state: TrainerState
    }

    static func build(
        _ p: TrainingParameters, inputs: LoadedInputs, restored: ResumePoint?, communicator: Communicator, events: TrainingEvents
    ) throws -> Built {
        if let lora = inputs.lora {
            return try buildLoRA(p, lora: lora, inputs: inputs, restored: restored, communicator: communicator, events: events)
        }
        var master = restored?.contents.masterWeights ?? inputs.policyWeights
        inputs.policyWeights = []  // master now holds the only copy (no second 4-bytes-per-parameter array)
        let layout = ParameterLayout(config: inputs.config)
        // --zero 1|2: this rank's optimizer covers its shard only (ResumePoint read the moments of that shard).
        let optimizer = p.zero != 0
            ? FlatOptimizer(options: p.optimizer, layout: layout,
                            range: ParameterShards.ranges(total: layout.totalCount, ranks: communicator.size)[communicator.rank])
            : FlatOptimizer(options: p.optimizer, layout: layout)
        let state = try restoreState(p, optimizer: optimizer, inputs: inputs, restored: restored, communicator: communicator)
        // Ranks start bit-identical whatever each one read from disk.
        if communicator.size > 1 { master.withUnsafeMutableBufferPointer { communicator.broadcastParameters($0) } }

        let policy: LlamaModel
        do { policy = try LlamaModel(config: inputs.config, precision: p.precision, trainable: true) } catch {
            throw TrainingError.model("--model \(p.modelDirectory): \(error)")
        }
        policy.gradientCheckpointing = p.gradientCheckpointing
        let (reference, evalReference) = try references(p, inputs: inputs, communicator: communicator, events: events)
        inputs.referenceWeights = nil
        let step = try DPOStep(
            policy: policy, reference: reference, masterWeights: master, optimizer: optimizer, lossScaler: state.lossScaler,
            options: stepOptions(p), communicator: communicator, stepIndex: state.globalStep)
        return Built(step: step, evalReference: evalReference, state: state)
    }

    static func stepOptions(_ p: TrainingParameters) -> DPOStep.Options {
        DPOStep.Options(
            loss: p.loss, maxGradNorm: p.maxGradNorm, sharePrompt: p.sharePrompt, bucketMegabytes: p.resolvedBucketMegabytes,
            wireType: p.allreduceDType ?? (p.precision == .fp16 ? .fp16 : .fp32), zeroStage: p.zero)
    }

    /// The trainer state to continue (the optimizer's restored from the checkpoint), stamped with this run's facts.
    static func restoreState(
        _ p: TrainingParameters, optimizer: FlatOptimizer, inputs: LoadedInputs, restored: ResumePoint?, communicator: Communicator
    ) throws -> TrainerState {
        var state = restored?.state ?? TrainerState()
        if let restored {
            let c = restored.contents
            try optimizer.restore(stepCount: c.optimizerStep, firstMoment: c.firstMoment, secondMoment: c.secondMoment)
            // A checkpoint of the other precision (--allow-changed-config) scales as this run's precision does.
            state.lossScaler = state.lossScaler.switched(enabled: p.precision == .fp16)
        } else {
            state.lossScaler = DynamicLossScaler(enabled: p.precision == .fp16)
        }
        state.seed = p.seed
        state.dataFingerprint = inputs.dataFingerprint
        state.modelFingerprints = inputs.fingerprints
        state.worldSize = communicator.size
        state.batchPairs = p.batchPairs
        state.gradAccum = p.gradAccum
        return state
    }

    /// The reference for training and for evaluation: none, a frozen model, or (--precompute-ref)
    /// the cached sums of each dataset, the model released once they are computed.
    static func references(
        _ p: TrainingParameters, inputs: LoadedInputs, communicator: Communicator, events: TrainingEvents
    ) throws -> (train: ReferenceLogps, eval: ReferenceLogps) {
        guard let referenceWeights = inputs.referenceWeights else { return (.none, .none) }
        // --shared-reference: one copy per host (not with --precompute-ref, which frees the model after the sums).
        if p.sharedReference, !p.precomputeReference,
           let shared = HostSharedReference.model(config: inputs.config, precision: p.precision, weights: referenceWeights,
                                                  communicator: communicator, events: events) {
            return (.model(shared), .model(shared))
        }
        let model = try LlamaModel(config: inputs.config, precision: p.precision, trainable: false)
        referenceWeights.withUnsafeBufferPointer { model.loadWeights($0) }
        guard p.precomputeReference else { return (.model(model), .model(model)) }
        let cache = ReferenceCacheLoader(
            model: model, weights: referenceWeights, precision: p.precision, batchPairs: p.batchPairs, paddingId: inputs.paddingId,
            outputURL: URL(fileURLWithPath: p.outputDirectory), communicator: communicator, events: events)
        let train = try cache.logps(of: inputs.train, name: "train")
        let eval = try inputs.eval.map { try cache.logps(of: $0, name: "eval") } ?? .none
        return (train, eval)
    }
}

/// Reference sums of a dataset from the cache in OUT, computing and caching them if absent.
struct ReferenceCacheLoader {
    let model: LlamaModel
    let weights: [Float]
    let precision: Precision
    let batchPairs: Int
    let paddingId: Int32
    let outputURL: URL
    let communicator: Communicator
    let events: TrainingEvents

    func logps(of pairs: [EncodedPair], name: String) throws -> ReferenceLogps {
        let key = ReferenceLogpsCache.key(weights: weights, precision: precision, pairs: pairs)
        let url = ReferenceLogpsCache.url(outputDirectory: outputURL, name: name, key: key)
        // Every rank reads the same file system in the common case; a rank that cannot see it computes.
        let cachedEverywhere = !communicator.anyRank(ReferenceLogpsCache.load(url, pairCount: pairs.count) == nil)
        if cachedEverywhere, let cached = ReferenceLogpsCache.load(url, pairCount: pairs.count) {
            events.message("reference log-probs of \(name) data: reusing \(url.lastPathComponent)")
            return .cached(chosen: cached.chosen, rejected: cached.rejected)
        }
        if let problem = ReferenceLogpsCache.checksumProblem(url) { events.message(problem) }
        let sums = ReferenceLogpsCache.compute(
            model: model, pairs: pairs, batchPairs: batchPairs, paddingId: paddingId, communicator: communicator)
        if communicator.rank == 0 {
            do { try ReferenceLogpsCache.save(url, chosen: sums.chosen, rejected: sums.rejected) } catch {
                throw TrainingError.output("cannot write the reference cache \(url.path): \(error)")
            }
            events.message("reference log-probs of \(name) data: computed \(pairs.count) pairs, cached in \(url.lastPathComponent)")
        }
        return .cached(chosen: sums.chosen, rejected: sums.rejected)
    }
}
