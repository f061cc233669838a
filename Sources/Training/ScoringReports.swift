import Distributed
import Foundation
import Llama
import Preference
import Tokenization

/// The library side of `dpo logps` and `dpo eval`: load, encode exactly as `dpo train`
/// does, score, and return JSON text for the CLI to print.
public enum ScoringReports {

    /// Options of `dpo logps`.
    public struct LogpsOptions: Sendable {
        public var modelDirectory: String
        public var dataFile: String
        public var averageLogps = false
        /// No truncation unless asked (`--max-length`, `--max-prompt-length`).
        public var maxLength: Int?
        public var maxPromptLength: Int?
        public var batchPairs = 4
        public var precision: Precision = .fp32
        /// Chat template and key names, as `dpo train` takes them.
        public var dataShape = DataShape()
        /// `--adapter DIR`: a PEFT LoRA adapter applied to the model (not merged).
        public var adapterDirectory: String?

        public init(modelDirectory: String, dataFile: String) {
            self.modelDirectory = modelDirectory
            self.dataFile = dataFile
        }
    }

    /// How the data file is read and rendered: `--chat-template` (nil = recognised from the
    /// tokenizer) and `--prompt-key/--chosen-key/--rejected-key`, shared with `dpo train`.
    public struct DataShape: Sendable {
        public var chatTemplate: ChatTemplate?
        public var keys = DatasetKeys()
        public init() {}
    }

    /// `dpo logps` answers every record (one line each), so it reads without skipping and its
    /// errors do not offer a `--skip-invalid` it does not have.
    static func noSkipping(_ options: DatasetReadOptions) -> DatasetReadOptions {
        var options = options
        options.offersSkipping = false
        return options
    }

    /// Lengths that never truncate: longer than any row this machine could hold.
    static let unlimitedLength = 1 << 30

    /// One JSON object per input pair, in input order:
    /// `{"index": i, "chosen_logps": x, "rejected_logps": y, "chosen_tokens": n, "rejected_tokens": m}`,
    /// or `{"index": i, "dropped": "reason"}` for a pair that cannot be encoded.
    public static func logps(_ o: LogpsOptions) throws -> [String] {
        guard o.batchPairs >= 1 else { throw TrainingError.invalidOption("--batch-pairs must be >= 1") }
        let (config, weights) = try TrainingInputs.loadModel(o.modelDirectory, flag: "--model")
        let tokenizer = try TrainingInputs.loadTokenizer(o.modelDirectory, flag: "--model")
        let maxLength = o.maxLength ?? unlimitedLength
        let encoding = EncodingOptions(maxLength: maxLength, maxPromptLength: o.maxPromptLength ?? maxLength,
                                       chatTemplate: o.dataShape.chatTemplate)
        let data = try TrainingInputs.loadPairs(
            o.dataFile, flag: "--data", tokenizer: tokenizer, encoding: encoding,
            reading: noSkipping(DatasetReadOptions(keys: o.dataShape.keys)), allowEmpty: true)
        try LoadedInputs.checkRows(data.pairs, config: config, file: o.dataFile, flag: "--data")
        let model = try LlamaModel(config: config, precision: o.precision, trainable: false)
        weights.withUnsafeBufferPointer { model.loadWeights($0) }
        if let adapter = o.adapterDirectory { try AdapterLoading.attach(adapter, to: model) }
        let scores = PreferenceEvaluator.score(
            model: model, pairs: data.pairs, batchPairs: o.batchPairs, paddingId: tokenizer.paddingId, average: o.averageLogps)
        var lines: [String] = []
        var next = 0
        for (index, outcome) in data.outcomes.enumerated() {
            switch outcome {
            case .encoded:
                let s = scores[next]
                next += 1
                // Finite weights can still overflow (fp16, an adapter, huge norms): a `null` log-prob is no answer.
                guard s.chosenLogps.isFinite, s.rejectedLogps.isFinite else {
                    throw TrainingError.numerical(
                        "the log-probs of record \(index) of \(o.dataFile) are not finite (chosen \(s.chosenLogps), rejected \(s.rejectedLogps)): "
                            + "the model's activations overflow. Use an earlier checkpoint, or with --precision fp16 try fp32")
                }
                lines.append("{\"index\": \(index), \"chosen_logps\": \(json(s.chosenLogps)), \"rejected_logps\": \(json(s.rejectedLogps)), "
                    + "\"chosen_tokens\": \(s.chosenTokens), \"rejected_tokens\": \(s.rejectedTokens)}")
            case .dropped(_, let reason):
                lines.append("{\"index\": \(index), \"dropped\": \(json(reason.rawValue))}")
            }
        }
        return lines
    }

    /// Options of `dpo eval`.
    public struct EvalOptions: Sendable {
        public var modelDirectory: String
        public var referenceModelDirectory: String?
        public var dataFile: String
        public var loss = PreferenceLossOptions()
        public var maxLength = 1024
        public var maxPromptLength = 512
        public var batchPairs = 4
        public var precision: Precision = .fp32
        public var dataShape = DataShape()
        /// `--skip-invalid`: skip unreadable records (counted as `eval_skipped`), as `dpo train` does.
        public var skipInvalid = false
        /// `--adapter DIR`: a PEFT LoRA adapter applied to the policy; without --ref-model the
        /// reference is then the base (the adapter switched off).
        public var adapterDirectory: String?

        public init(modelDirectory: String, dataFile: String) {
            self.modelDirectory = modelDirectory
            self.dataFile = dataFile
        }
    }

    /// One JSON object: the `eval_`-prefixed metrics of `metrics.jsonl`, plus `eval_pairs` and `eval_dropped`.
    public static func evaluate(_ o: EvalOptions, communicator: Communicator) throws -> String {
        do { try o.loss.validate() } catch { throw TrainingError.invalidOption("\(error)") }
        guard o.batchPairs >= 1 else { throw TrainingError.invalidOption("--batch-pairs must be >= 1") }
        if o.loss.needsReference && o.referenceModelDirectory == nil && o.adapterDirectory == nil {
            throw TrainingError.invalidOption("dpo eval needs --ref-model DIR or --reference-free (the loss compares against a reference)")
        }
        let (config, weights) = try TrainingInputs.loadModel(o.modelDirectory, flag: "--model")
        var reference = ReferenceLogps.none
        if o.loss.needsReference, let referenceDirectory = o.referenceModelDirectory {
            let (referenceConfig, referenceWeights) = try TrainingInputs.loadModel(referenceDirectory, flag: "--ref-model")
            try TrainingInputs.checkSameArchitecture(policy: config, reference: referenceConfig, referenceDirectory: referenceDirectory)
            let model = try LlamaModel(config: config, precision: o.precision, trainable: false)
            referenceWeights.withUnsafeBufferPointer { model.loadWeights($0) }
            reference = .model(model)
        }
        let tokenizer = try TrainingInputs.loadTokenizer(o.modelDirectory, flag: "--model")
        let data = try TrainingInputs.loadPairs(
            o.dataFile, flag: "--data", tokenizer: tokenizer,
            encoding: EncodingOptions(maxLength: o.maxLength, maxPromptLength: o.maxPromptLength,
                                      chatTemplate: o.dataShape.chatTemplate),
            reading: DatasetReadOptions(keys: o.dataShape.keys, skipInvalid: o.skipInvalid))
        try LoadedInputs.checkRows(data.pairs, config: config, file: o.dataFile, flag: "--data")
        let policy = try LlamaModel(config: config, precision: o.precision, trainable: false)
        weights.withUnsafeBufferPointer { policy.loadWeights($0) }
        if let adapter = o.adapterDirectory {
            try AdapterLoading.attach(adapter, to: policy)
            if o.loss.needsReference && o.referenceModelDirectory == nil { reference = .baseModel(policy) }
        }
        let sums = try PreferenceEvaluator.evaluate(
            policy: policy, reference: reference, pairs: data.pairs, options: o.loss, batchPairs: o.batchPairs,
            paddingId: tokenizer.paddingId, communicator: communicator)
        var fields = sums.metrics(options: o.loss, prefix: "eval_").map { "\(json($0.name)): \(json($0.value))" }
        fields.append("\"eval_pairs\": \(data.pairs.count)")
        fields.append("\"eval_dropped\": \(data.outcomes.count - data.pairs.count)")
        if o.skipInvalid { fields.append("\"eval_skipped\": \(data.skipped)") }
        return "{" + fields.joined(separator: ", ") + "}"
    }

    // MARK: - JSON text

    static func json(_ value: Float) -> String { value.isFinite ? "\(value)" : "null" }
    static func json(_ value: Double) -> String { value.isFinite ? "\(value)" : "null" }
    static func json(_ text: String) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: [text], options: [.withoutEscapingSlashes])) ?? Data("[\"\"]".utf8)
        return String(String(decoding: data, as: UTF8.self).dropFirst().dropLast())
    }
}
