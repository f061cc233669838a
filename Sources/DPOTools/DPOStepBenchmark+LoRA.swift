import Distributed
import Foundation
import Llama
import Preference
import Training

extension DPOStepBenchmark {
    /// The LoRA step the trainer would build: the base `weights` frozen in the policy,
    /// PEFT-initialised adapters on all seven projections (alpha 2r), the reference = the base
    /// (adapters off; precomputed with `precomputeReference`), AdamW over the adapters.
    static func makeLoRAStep(_ o: Options, config: LlamaConfig, weights: [Float], pairs: [EncodedPair], paddingId: Int32,
                             communicator: Communicator) throws -> DPOStep {
        let policy = try LlamaModel(config: config, precision: o.precision, trainable: true)
        weights.withUnsafeBufferPointer { policy.loadWeights($0) }
        let adapters = try LoRAAdapters(model: config, config: LoRAConfig(rank: o.loraRank))
        policy.attach(adapters)
        var reference = ReferenceLogps.baseModel(policy)
        if o.precomputeReference {
            let sums = policy.withAdaptersDisabled {
                ReferenceLogpsCache.compute(model: policy, pairs: pairs, batchPairs: o.batchPairs, paddingId: paddingId, communicator: communicator)
            }
            reference = .cached(chosen: sums.chosen, rejected: sums.rejected)
        }
        var defaults = TrainingParameters()
        defaults.precision = o.precision
        let options = DPOStep.Options(
            loss: defaults.loss, maxGradNorm: defaults.maxGradNorm, sharePrompt: o.sharePrompt, bucketMegabytes: defaults.resolvedBucketMegabytes,
            wireType: o.precision == .fp16 ? .fp16 : .fp32)
        let master = LoRAAdapters.initialWeights(layout: adapters.layout, seed: 1)
        return try DPOStep(
            policy: policy, reference: reference, masterWeights: master,
            optimizer: FlatOptimizer(options: defaults.optimizer, decayMask: [Float](repeating: 1, count: master.count)),
            lossScaler: DynamicLossScaler(enabled: o.precision == .fp16), options: options, communicator: communicator)
    }
}
