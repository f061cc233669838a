import Foundation

/// Checks of a resume against the checkpoint it continues, beyond the weights themselves
/// (those are `ModelFingerprints`): a step target already passed.
public enum ResumeChecks {
    /// Refuses a run whose last step (`totalSteps`, from `--max-steps` or `--epochs`) lies before
    /// the checkpoint's step: it would "train -N steps" and write a final/ of the checkpoint.
    public static func checkStepTarget(totalSteps: Int, parameters p: TrainingParameters, checkpointStep: Int, checkpoint: URL) throws {
        guard totalSteps < checkpointStep else { return }
        let target = p.maxSteps > 0 ? "--max-steps \(p.maxSteps)" : "--epochs \(p.epochs) (\(totalSteps) steps)"
        throw TrainingError.invalidOption(
            "\(target) is below step \(checkpointStep) of \(checkpoint.path): nothing would be trained; "
                + "pass a --max-steps above \(checkpointStep), or use \(checkpoint.path) as the finished model")
    }
}

// MARK: - Changed options

extension ResumeChecks {
    /// An option whose value differs between the checkpoint's `train_config.json` and this run.
    public struct ChangedOption: Equatable, Sendable {
        public var flag: String
        public var before: String
        public var after: String
        /// True when continuing with the new value makes the run meaningless as one run (a
        /// different objective, precision or data order).
        public var refused: Bool
    }

    /// `train_config.json` keys (nested ones joined with ".") that change what the run optimises
    /// or in which order it sees the data: refused unless `--allow-changed-config`.
    static let refusedKeys: Set<String> = [
        "loss.kind", "loss.beta", "loss.labelSmoothing", "loss.rpoAlpha", "loss.referenceFree", "loss.averageLogps",
        "precision", "seed", "optimizer.kind", "lora_r", "lora_alpha", "lora_targets",
    ]
    /// Keys that say where things are or how the run is driven, checked elsewhere or free to change.
    static let ignoredKeys: Set<String> = [
        "model", "ref_model", "data", "eval_data", "out", "resume", "max_steps", "epochs", "batch_pairs", "grad_accum",
        "threads", "log_every", "eval_every", "save_every", "keep_checkpoints", "check_every", "bucket_mb", "allreduce_dtype",
        "save_dtype", "share_prompt", "precompute_ref", "max_skipped_steps", "skip_invalid", "skip_identical",
        "allow_changed_model", "allow_changed_config", "collective_timeout", "adapter", "zero",
        "gradient_checkpointing", "force", "shared_reference",
    ]
    /// Flag names of the nested keys (top-level keys are the flag with "_" -> "-").
    static let flagNames: [String: String] = [
        "loss.kind": "--loss", "loss.beta": "--beta", "loss.labelSmoothing": "--label-smoothing", "loss.rpoAlpha": "--rpo-alpha",
        "loss.referenceFree": "--reference-free", "loss.averageLogps": "--average-logps", "optimizer.kind": "--optimizer",
        "optimizer.weightDecay": "--weight-decay", "optimizer.beta1": "--adam-beta1", "optimizer.beta2": "--adam-beta2",
        "optimizer.epsilon": "--adam-eps",
    ]

    /// The training options changed since `checkpoint` was written (read from its
    /// `train_config.json`; none when it has none). Returns one line per change to print;
    /// throws listing them when one is refused and `allowChanged` is false.
    public static func checkChangedOptions(checkpoint: URL, now: TrainingParameters, allowChanged: Bool) throws -> [String] {
        let url = checkpoint.appendingPathComponent(TrainingCheckpoint.configFileName)
        guard let saved = FileManager.default.contents(atPath: url.path) else { return [] }
        let changes = try changedOptions(saved: saved, now: TrainingCheckpoint.encodedParameters(now), source: url.path)
        guard !changes.isEmpty else { return [] }
        let list = changes.map { "\($0.flag) \($0.before) -> \($0.after)" }.joined(separator: ", ")
        let refused = changes.filter(\.refused)
        if !refused.isEmpty && !allowChanged {
            throw TrainingError.invalidOption(
                "resuming \(checkpoint.path) with changed training options: \(list); "
                    + refused.map(\.flag).joined(separator: ", ") + " would make the continuation a different run. "
                    + "Resume with the checkpoint's values, or pass --allow-changed-config to continue anyway")
        }
        return ["resuming with changed training options: \(list)"]
    }

    /// Leaf-by-leaf comparison of two `train_config.json` documents.
    static func changedOptions(saved: Data, now: Data, source: String) throws -> [ChangedOption] {
        guard let before = try? JSONSerialization.jsonObject(with: saved) as? [String: Any] else {
            throw TrainingError.checkpoint("\(source) is not a JSON object of training options")
        }
        let after = (try JSONSerialization.jsonObject(with: now) as? [String: Any]) ?? [:]
        let old = flatten(before), new = flatten(after)
        var changes: [ChangedOption] = []
        // A key the checkpoint lacks is an option added since it was written: not a change.
        for key in old.keys.sorted() where !ignoredKeys.contains(key) {
            let was = old[key] ?? "(unset)", isNow = new[key] ?? "(unset)"
            guard was != isNow else { continue }
            let flag = flagNames[key] ?? "--" + key.replacingOccurrences(of: "_", with: "-")
            changes.append(ChangedOption(flag: flag, before: was, after: isNow, refused: refusedKeys.contains(key)))
        }
        return changes
    }

    /// "a.b" -> the leaf as JSON text.
    static func flatten(_ object: [String: Any], prefix: String = "") -> [String: String] {
        var out: [String: String] = [:]
        for (key, value) in object {
            let name = prefix.isEmpty ? key : prefix + "." + key
            if let nested = value as? [String: Any] {
                out.merge(flatten(nested, prefix: name)) { a, _ in a }
            } else if let data = try? JSONSerialization.data(withJSONObject: [value], options: [.fragmentsAllowed]) {
                out[name] = String(String(decoding: data, as: UTF8.self).dropFirst().dropLast())
            }
        }
        return out
    }
}
