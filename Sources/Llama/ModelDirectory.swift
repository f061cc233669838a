import Foundation

/// The dtype of the tensors written to `model.safetensors`.
public enum WeightDType: String, CaseIterable, Codable, Sendable {
    case fp32, fp16, bf16

    public var safetensors: SafetensorsDType {
        switch self {
        case .fp32: return .F32
        case .fp16: return .F16
        case .bf16: return .BF16
        }
    }
}

/// A Hugging Face model directory in and out: `config.json`, `generation_config.json` and
/// `model.safetensors` (or shards with `model.safetensors.index.json`), tensor names as in
/// transformers' `LlamaForCausalLM`. Tokenizer files belong to the Tokenization layer.
///
/// Weights cross this boundary as one flat fp32 buffer in `ParameterLayout` order.
public enum ModelDirectory {
    public static let configFileName = "config.json"
    public static let generationConfigFileName = "generation_config.json"
    static let lmHeadName = "lm_head.weight"
    static let embeddingName = "model.embed_tokens.weight"

    // MARK: - Loading

    /// Only the validated `config.json` of the model directory at `url` (no weights read).
    public static func loadConfig(_ url: URL) throws -> LlamaConfig {
        try LlamaConfig.load(from: url.appendingPathComponent(configFileName))
    }

    /// Reads the config and the weights of the model directory at `url`.
    ///
    /// Every tensor's shape is checked against `config.json` before the flat buffer is
    /// allocated. Tied models: `lm_head.weight` is ignored if present (transformers ties it
    /// to the embedding); if only `lm_head.weight` is stored, it serves as the embedding.
    /// Untied models need `lm_head.weight`. A tensor the model has no parameter for (biases,
    /// extra layers) is refused, except the non-parameter `rotary_emb.inv_freq` buffers of old
    /// checkpoints. Non-finite weights are refused.
    public static func load(_ url: URL) throws -> (config: LlamaConfig, weights: [Float]) {
        let config = try loadConfig(url)
        let archive = try SafetensorsArchive(directory: url)
        let layout = ParameterLayout(config: config)
        let configPath = url.appendingPathComponent(configFileName).path

        // Which stored tensor supplies each parameter; shapes checked before allocating.
        var sources: [(entry: ParameterLayout.Entry, tensor: String)] = []
        for entry in layout.entries {
            var tensor = entry.name
            if archive[tensor] == nil, entry.name == embeddingName, config.tieWordEmbeddings, archive[lmHeadName] != nil {
                tensor = lmHeadName
            }
            guard let (file, info) = archive[tensor] else {
                let why = entry.name == lmHeadName ? " (\(configPath) has tie_word_embeddings false, so the untied lm_head is needed)" : ""
                throw SafetensorsError(.missingTensor, file: archive.description, tensor: entry.name, "not found\(why)")
            }
            guard info.shape == entry.shape else {
                throw SafetensorsError(.shapeMismatch, file: file.url.path, tensor: tensor, "shape is \(info.shape) but \(configPath) implies \(entry.shape)")
            }
            guard info.dtype.isReadableAsFloat else {
                throw SafetensorsError(.unsupportedDType, file: file.url.path, tensor: tensor, "dtype \(info.dtype.rawValue) cannot be read as weights")
            }
            sources.append((entry, tensor))
        }
        for name in archive.tensorNames where layout[name] == nil {
            if name == lmHeadName, config.tieWordEmbeddings { continue }
            if name.hasSuffix(".rotary_emb.inv_freq") { continue }
            throw SafetensorsError(.unexpectedTensor, file: archive[name]!.file.url.path, tensor: name, "the model described by \(configPath) has no such parameter; refusing to drop it")
        }

        // Every parameter is converted from the mapped file straight into its place (checked for
        // NaN/infinity block by block as it is written), so the buffer is not zero-filled first;
        // it becomes the run's master weights, hence huge pages.
        precondition(sources.reduce(0) { $0 + $1.entry.range.count } == layout.totalCount, "every parameter has a source tensor")
        let weights = try HugePages.floats(count: layout.totalCount) { flat in
            for (entry, tensor) in sources {
                try archive.readFloats(tensor, expectedShape: entry.shape, requireFinite: true, into: UnsafeMutableBufferPointer(rebasing: flat[entry.range]))
            }
        }
        return (config, weights)
    }

    // MARK: - Saving

    /// Writes `config.json`, `generation_config.json` and the weights (flat, `ParameterLayout`
    /// order) as `model.safetensors` in `dtype`, or as shards of about `maxShardBytes` when
    /// given. Each file is written to a temporary name and renamed into place; weight files
    /// of the other layout (single vs sharded) left by an earlier save are removed.
    public static func save(
        config: LlamaConfig, weights: [Float], to url: URL, dtype: WeightDType = .fp32, maxShardBytes: Int? = nil,
        observer: FileContentsObserver? = nil
    ) throws {
        try weights.withUnsafeBufferPointer {
            try save(config: config, weights: $0, to: url, dtype: dtype, maxShardBytes: maxShardBytes, observer: observer)
        }
    }

    /// As `save(config:weights:to:dtype:maxShardBytes:)`, from a buffer. `observer` sees the
    /// bytes of the weights files as they are written.
    public static func save(
        config: LlamaConfig, weights: UnsafeBufferPointer<Float>, to url: URL, dtype: WeightDType = .fp32, maxShardBytes: Int? = nil,
        observer: FileContentsObserver? = nil
    ) throws {
        try config.validate()
        let layout = ParameterLayout(config: config)
        guard weights.count == layout.totalCount else {
            throw SafetensorsError(.shapeMismatch, file: url.path, "\(weights.count) weights given but the config needs \(layout.totalCount)")
        }
        do {
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        } catch {
            throw SafetensorsError(.writeFailed, file: url.path, "cannot create the directory: \(error.localizedDescription)")
        }

        let tensors = layout.entries.map { entry in
            SafetensorsTensorSource(name: entry.name, shape: entry.shape, values: UnsafeBufferPointer(rebasing: weights[entry.range]))
        }
        let single = url.appendingPathComponent(SafetensorsArchive.singleFileName)
        let index = url.appendingPathComponent(SafetensorsArchive.indexFileName)
        // Shards of an earlier sharded save, to remove once the new weights are in place.
        let previousShards = (try? SafetensorsArchive(index: index))?.files.map(\.url) ?? []
        if let maxShardBytes {
            let written = try SafetensorsWriter.writeSharded(
                tensors, dtype: dtype.safetensors, maxShardBytes: maxShardBytes, directory: url, observer: observer)
            try? FileManager.default.removeItem(at: single)
            for shard in previousShards where !written.contains(shard.lastPathComponent) {
                try? FileManager.default.removeItem(at: shard)
            }
        } else {
            try SafetensorsWriter.write(tensors, dtype: dtype.safetensors, to: single, observer: observer)
            if !previousShards.isEmpty || FileManager.default.fileExists(atPath: index.path) {
                try? FileManager.default.removeItem(at: index)
                for shard in previousShards { try? FileManager.default.removeItem(at: shard) }
            }
        }

        var savedConfig = config
        savedConfig.torchDtype = dtype.safetensors.torchName
        try AtomicFile.write(try generationConfigJSON(config), to: url.appendingPathComponent(generationConfigFileName))
        try savedConfig.save(to: url.appendingPathComponent(configFileName))
    }

    /// `generation_config.json`: the special token ids transformers' `generate` uses.
    static func generationConfigJSON(_ config: LlamaConfig) throws -> Data {
        var object: [String: JSONValue] = ["_from_model_config": .bool(true)]
        if let bos = config.bosTokenId { object["bos_token_id"] = .integer(Int64(bos)) }
        if config.eosTokenIds.count == 1 {
            object["eos_token_id"] = .integer(Int64(config.eosTokenIds[0]))
        } else if config.eosTokenIds.count > 1 {
            object["eos_token_id"] = .array(config.eosTokenIds.map { .integer(Int64($0)) })
        }
        if let pad = config.padTokenId { object["pad_token_id"] = .integer(Int64(pad)) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(JSONValue.object(object))
    }
}
