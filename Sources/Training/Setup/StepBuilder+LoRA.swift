import Distributed
import Foundation
import Llama
import Preference

extension StepBuilder {
    /// A LoRA run's step: the base weights frozen in the policy (working precision, no master
    /// copy, no gradient), the fp32 adapter vector as the master weights the optimizer updates,
    /// and the reference = the policy with adapters off (no second model), unless --ref-model
    /// names another directory.
    static func buildLoRA(
        _ p: TrainingParameters, lora: LoRASetup.Start, inputs: LoadedInputs, restored: ResumePoint?, communicator: Communicator,
        events: TrainingEvents
    ) throws -> Built {
        var master = restored?.contents.masterWeights ?? lora.initial
        // transformers' Trainer decays every adapter matrix (none is a bias or a norm).
        let optimizer = FlatOptimizer(options: p.optimizer, decayMask: [Float](repeating: 1, count: master.count))
        let state = try restoreState(p, optimizer: optimizer, inputs: inputs, restored: restored, communicator: communicator)
        if communicator.size > 1 {
            // Ranks start bit-identical: base and adapters as rank 0 read them.
            inputs.policyWeights.withUnsafeMutableBufferPointer { communicator.broadcastParameters($0) }
            master.withUnsafeMutableBufferPointer { communicator.broadcastParameters($0) }
        }
        let policy: LlamaModel
        do {
            policy = try LlamaModel(config: inputs.config, precision: p.precision, trainable: true)
            policy.attach(try LoRAAdapters(model: inputs.config, config: lora.config))
        } catch { throw TrainingError.model("--model \(p.modelDirectory): \(error)") }
        inputs.policyWeights.withUnsafeBufferPointer { policy.loadWeights($0) }

        let separateReference = p.referenceModelDirectory.map {
            URL(fileURLWithPath: $0).standardizedFileURL != URL(fileURLWithPath: p.modelDirectory).standardizedFileURL
        } ?? false
        let reference: ReferenceLogps, evalReference: ReferenceLogps
        if !p.loss.needsReference {
            (reference, evalReference) = (.none, .none)
        } else if separateReference {
            (reference, evalReference) = try references(p, inputs: inputs, communicator: communicator, events: events)
        } else if p.precomputeReference {
            let cache = ReferenceCacheLoader(
                model: policy, weights: inputs.policyWeights, precision: p.precision, batchPairs: p.batchPairs,
                paddingId: inputs.paddingId, outputURL: URL(fileURLWithPath: p.outputDirectory), communicator: communicator,
                events: events)
            reference = try policy.withAdaptersDisabled { try cache.logps(of: inputs.train, name: "train") }
            evalReference = try policy.withAdaptersDisabled { try inputs.eval.map { try cache.logps(of: $0, name: "eval") } ?? .none }
        } else {
            (reference, evalReference) = (.baseModel(policy), .baseModel(policy))
        }
        inputs.policyWeights = []
        inputs.referenceWeights = nil
        let step = try DPOStep(
            policy: policy, reference: reference, masterWeights: master, optimizer: optimizer, lossScaler: state.lossScaler,
            options: stepOptions(p), communicator: communicator, stepIndex: state.globalStep)
        return Built(step: step, evalReference: evalReference, state: state)
    }
}
