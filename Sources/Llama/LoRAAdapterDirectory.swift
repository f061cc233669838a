import Foundation

/// A PEFT LoRA adapter directory, as `peft.PeftModel.save_pretrained` writes it:
///
///     adapter_config.json          peft_type LORA, r, lora_alpha, lora_dropout, target_modules, bias none, ...
///     adapter_model.safetensors    base_model.model.model.layers.{i}.<path>.lora_A.weight [r, in]
///                                  base_model.model.model.layers.{i}.<path>.lora_B.weight [out, r]
///
/// Read back with the checks that keep a wrong adapter from being applied silently: the
/// features PEFT has and swift-dpo does not (rsLoRA, DoRA, per-module ranks, bias, extra
/// saved modules) are refused, and every tensor must have the base model's shapes.
public enum LoRAAdapterDirectory {
    public static let configFileName = "adapter_config.json"
    public static let weightsFileName = "adapter_model.safetensors"

    /// Whether `directory` holds an adapter (its `adapter_config.json`).
    public static func isAdapter(_ directory: URL) -> Bool {
        FileManager.default.fileExists(atPath: directory.appendingPathComponent(configFileName).path)
    }

    /// Writes the two files (weights F32, as they train) into `directory` (created if needed).
    public static func save(_ values: [Float], layout: LoRALayout, config: LoRAConfig, baseModel: String, to directory: URL) throws {
        precondition(values.count == layout.totalCount, "adapter values do not fit the layout")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try values.withUnsafeBufferPointer { flat in
            let tensors = layout.entries.map {
                SafetensorsTensorSource(name: $0.name, shape: $0.shape, values: UnsafeBufferPointer(rebasing: flat[$0.range]))
            }
            try SafetensorsWriter.write(tensors, dtype: .F32, to: directory.appendingPathComponent(weightsFileName))
        }
        try AtomicFile.write(try configJSON(config, baseModel: baseModel), to: directory.appendingPathComponent(configFileName))
    }

    /// `adapter_config.json`: PEFT's `LoraConfig` fields for what swift-dpo trains.
    static func configJSON(_ config: LoRAConfig, baseModel: String) throws -> Data {
        let object: [String: JSONValue] = [
            "peft_type": .string("LORA"), "task_type": .string("CAUSAL_LM"),
            "r": .integer(Int64(config.rank)), "lora_alpha": number(config.alpha), "lora_dropout": number(config.dropout),
            "target_modules": .array(config.targets.map { .string($0.rawValue) }),
            "base_model_name_or_path": .string(baseModel), "bias": .string("none"),
            "fan_in_fan_out": .bool(false), "inference_mode": .bool(true), "init_lora_weights": .bool(true),
            "use_rslora": .bool(false), "use_dora": .bool(false), "modules_to_save": .null,
            "layers_to_transform": .null, "layers_pattern": .null, "rank_pattern": .object([:]), "alpha_pattern": .object([:]),
            "revision": .null,
        ]
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(JSONValue.object(object))
    }

    /// Whole numbers as JSON integers (PEFT writes `lora_alpha: 32`), others as numbers.
    private static func number(_ value: Double) -> JSONValue {
        value == value.rounded() && abs(value) < 1e15 ? .integer(Int64(value)) : .number(value)
    }

    // MARK: - Reading

    /// The adapter's config and weights (layout order) for base model `model`.
    public static func load(_ directory: URL, model: LlamaConfig) throws -> (config: LoRAConfig, values: [Float], baseModel: String?) {
        let (config, baseModel) = try readConfig(directory)
        do { try config.validate(for: model) } catch {
            throw LoRAError("\(directory.path)/\(configFileName): \(error) (was the adapter made for another base model?)")
        }
        let layout = LoRALayout(model: model, lora: config)
        let url = directory.appendingPathComponent(weightsFileName)
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw LoRAError("\(directory.path): no \(weightsFileName) (adapter_model.bin is not read; save with safe_serialization=True)")
        }
        let file = try SafetensorsFile(contentsOf: url)
        let expected = Set(layout.entries.map(\.name))
        if let extra = file.tensors.first(where: { !expected.contains($0.name) }) {
            throw LoRAError("\(url.path): tensor \(extra.name) is not a LoRA A/B of the targeted modules of this \(model.numHiddenLayers)-layer "
                + "base model (adapters of other modules, extra saved modules and adapters of deeper models are refused)")
        }
        var values = [Float](repeating: 0, count: layout.totalCount)
        try values.withUnsafeMutableBufferPointer { flat in
            for entry in layout.entries {
                guard let info = file[entry.name] else {
                    throw LoRAError("\(url.path): tensor \(entry.name) is missing (target_modules lists \(entry.module.rawValue))")
                }
                guard info.shape == entry.shape else {
                    throw LoRAError("\(url.path): \(entry.name) has shape \(info.shape), this base model needs \(entry.shape) "
                        + "(the adapter was made for a base model of another shape)")
                }
                try file.readFloats(entry.name, into: UnsafeMutableBufferPointer(rebasing: flat[entry.range]))
            }
        }
        if let bad = values.firstIndex(where: { !$0.isFinite }) {
            throw LoRAError("\(url.path): adapter value \(bad) is \(values[bad]); the adapter is damaged")
        }
        return (config, values, baseModel)
    }

    /// Parses `adapter_config.json`, refusing the PEFT features not implemented here.
    static func readConfig(_ directory: URL) throws -> (LoRAConfig, baseModel: String?) {
        let url = directory.appendingPathComponent(configFileName)
        let path = url.path
        guard let data = FileManager.default.contents(atPath: path) else { throw LoRAError("\(path): cannot read it (no such file?)") }
        let json: [String: JSONValue]
        do {
            guard let object = try JSONValue.parse(data).objectValue else { throw LoRAError("not a JSON object") }
            json = object
        } catch { throw LoRAError("\(path): not valid JSON: \(error)") }
        func fail(_ key: String, _ why: String) -> LoRAError { LoRAError("\(path): \(key) \(why)") }
        guard json["peft_type"]?.stringValue == "LORA" else { throw fail("peft_type", "is \(json["peft_type"]?.kindDescription ?? "missing"), only LORA adapters are read") }
        guard let rank = json["r"]?.intValue else { throw fail("r", "is missing or not an integer") }
        let alpha = json["lora_alpha"]?.doubleValue ?? 8  // PEFT's default
        let dropout = json["lora_dropout"]?.doubleValue ?? 0
        let refusals: [(String, Bool)] = [
            ("bias", (json["bias"]?.stringValue ?? "none") != "none"),
            ("use_rslora", json["use_rslora"]?.boolValue ?? false), ("use_dora", json["use_dora"]?.boolValue ?? false),
            ("fan_in_fan_out", json["fan_in_fan_out"]?.boolValue ?? false),
            ("rank_pattern", !(json["rank_pattern"]?.objectValue?.isEmpty ?? true)),
            ("alpha_pattern", !(json["alpha_pattern"]?.objectValue?.isEmpty ?? true)),
            ("layers_to_transform", !(json["layers_to_transform"]?.isNull ?? true)),
            ("modules_to_save", !(json["modules_to_save"]?.isNull ?? true)),
            ("lora_bias", json["lora_bias"]?.boolValue ?? false), ("use_qalora", json["use_qalora"]?.boolValue ?? false),
            ("layer_replication", !(json["layer_replication"]?.isNull ?? true)),
            ("trainable_token_indices", !(json["trainable_token_indices"]?.isNull ?? true)),
            ("target_parameters", !(json["target_parameters"]?.isNull ?? true)),
            ("exclude_modules", !(json["exclude_modules"]?.isNull ?? true)),
        ]
        if let (key, _) = refusals.first(where: \.1) {
            throw fail(key, "= \(json[key]?.kindDescription ?? "?") is not supported (only plain LoRA: bias none, no rsLoRA/DoRA, one rank and alpha, all layers)")
        }
        let targets: [LoRAModule]
        switch json["target_modules"] {
        case .string("all-linear"): targets = LoRAModule.allCases
        case .array(let names):
            let strings = names.compactMap(\.stringValue)
            do { targets = try LoRAConfig.parseTargets(strings.joined(separator: ",")) } catch { throw fail("target_modules", "\(error)") }
        default:
            throw fail("target_modules", "must be a list of module names or \"all-linear\" (a regular expression is not supported)")
        }
        return (LoRAConfig(rank: rank, alpha: alpha, dropout: dropout, targets: targets), json["base_model_name_or_path"]?.stringValue)
    }
}
