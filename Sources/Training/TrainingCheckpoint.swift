import Foundation
import Llama
import Tokenization

/// The contents of `checkpoint-<step>/` and `final/`:
///
///     config.json, generation_config.json, model.safetensors   Hugging Face model directory (--save-dtype)
///     tokenizer.json, tokenizer_config.json, ...              copied from the policy model directory
///     chat_template.jinja                                     the model's, or the --chat-template one
///     trainer_state.json                                      TrainerState
///     optimizer.safetensors                                   master_weights, exp_avg, exp_avg_sq (fp32, layout order)
///       or, with --zero 1, optimizer-shard-<r>-of-<N>.safetensors, one per rank (`OptimizerShards`)
///     train_config.json                                       the resolved TrainingParameters
///     manifest.json                                           written last by CheckpointStore
///
/// A LoRA run (`--lora-r`, `--adapter`) writes the PEFT adapter instead of the model files:
/// adapter_config.json, adapter_model.safetensors, and base_config.json (the base model's
/// config, so a resume can check the architecture); master_weights are then the adapters.
public enum TrainingCheckpoint {
    public static let optimizerFileName = "optimizer.safetensors"
    public static let configFileName = "train_config.json"

    /// What a checkpoint restores.
    public struct Contents {
        public var config: LlamaConfig
        public var masterWeights: [Float]
        public var optimizerStep: Int
        public var firstMoment: [Float]
        public var secondMoment: [Float]
        public var state: TrainerState
    }

    /// Writes the files of a checkpoint into `directory` (CheckpointStore provides the
    /// temporary directory, the manifest and the rename). `optimizerShards` (`--zero 1`): the
    /// staging directory holding every rank's optimizer shard, moved in instead of writing
    /// `optimizer.safetensors`. `digests` sees the weights and optimizer files as they are written.
    public static func write(
        into directory: URL, config: LlamaConfig, masterWeights: [Float], optimizer: FlatOptimizer,
        state: TrainerState, parameters: TrainingParameters, tokenizerSource: URL,
        optimizerShards: (staging: URL, worldSize: Int)? = nil, digests: CheckpointDigests? = nil
    ) throws {
        if let lora = parameters.loraConfig {
            try writeAdapter(into: directory, config: config, lora: lora, adapters: masterWeights, parameters: parameters)
        } else {
            try ModelDirectory.save(config: config, weights: masterWeights, to: directory, dtype: parameters.saveDType, observer: digests)
        }
        try TokenizerFiles.copy(from: tokenizerSource, to: directory)
        // An explicit --chat-template wins over the model's: save it where transformers looks first.
        if let template = parameters.chatTemplate { try ChatTemplate.writeModelFile(template, to: directory) }
        try state.encoded().write(to: directory.appendingPathComponent(TrainerState.fileName))
        try encodedParameters(parameters).write(to: directory.appendingPathComponent(configFileName))
        if let optimizerShards {
            try OptimizerShards.collect(from: optimizerShards.staging, into: directory, worldSize: optimizerShards.worldSize)
            return
        }
        try masterWeights.withUnsafeBufferPointer { master in
            try OptimizerStateFile.write(master: master, optimizer: optimizer, to: directory.appendingPathComponent(optimizerFileName), observer: digests)
        }
    }

    /// Reads a (verified) checkpoint back: the full master weights, and the AdamW moments of
    /// elements `momentRange` (a `--zero 1` rank's shard; nil = all), from `optimizer.safetensors`
    /// or from the optimizer shards of any world size.
    public static func read(_ directory: URL, optimizerKind: OptimizerKind, momentRange: Range<Int>? = nil) throws -> Contents {
        let path = directory.path
        do {
            let modelConfig = directory.appendingPathComponent(ModelDirectory.configFileName)
            let config = try LlamaConfig.load(
                from: FileManager.default.fileExists(atPath: modelConfig.path) ? modelConfig : directory.appendingPathComponent(baseConfigFileName))
            let stateURL = directory.appendingPathComponent(TrainerState.fileName)
            let state = try TrainerState.decode(Data(contentsOf: stateURL), source: stateURL.path)
            let optimizerURL = directory.appendingPathComponent(optimizerFileName)
            if !FileManager.default.fileExists(atPath: optimizerURL.path), let shards = try OptimizerShards.list(in: directory) {
                let (step, master, first, second) = try OptimizerShards.read(shards.files, optimizerKind: optimizerKind, range: momentRange)
                return Contents(config: config, masterWeights: master, optimizerStep: step, firstMoment: first,
                                secondMoment: second, state: state)
            }
            let file = try OptimizerStateFile.open(optimizerURL, optimizerKind: optimizerKind)
            let step = OptimizerStateFile.step(of: file)
            let master = try file.floats("master_weights")
            var first = optimizerKind == .adamw ? try file.floats("exp_avg") : []
            var second = optimizerKind == .adamw ? try file.floats("exp_avg_sq") : []
            if let momentRange, optimizerKind == .adamw, momentRange.upperBound <= first.count {
                first = Array(first[momentRange])
                second = Array(second[momentRange])
            }
            return Contents(config: config, masterWeights: master, optimizerStep: step, firstMoment: first,
                            secondMoment: second, state: state)
        } catch let error as TrainingError {
            throw error
        } catch {
            throw TrainingError.checkpoint("cannot read \(path): \(error)")
        }
    }

    /// `train_config.json` bytes.
    public static func encodedParameters(_ parameters: TrainingParameters) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(parameters)
    }
}
