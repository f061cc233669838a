import Distributed
import Foundation
import Llama
import Preference
import Tokenization

/// The run's inputs, loaded and checked before anything is written to OUT: the policy (and
/// reference) weights, the tokenizer's padding id, the encoded training and evaluation pairs.
/// A class so the step builder can drop the weight arrays once the models hold them.
final class LoadedInputs {
    let config: LlamaConfig
    /// The policy's starting weights [P] (emptied once the master weights take over).
    var policyWeights: [Float]
    /// The reference's weights: nil when the loss needs none; the policy's (shared storage) without --ref-model.
    var referenceWeights: [Float]?
    let fingerprints: ModelFingerprints
    let paddingId: Int32
    let train: [EncodedPair]
    let eval: [EncodedPair]?
    /// SHA-256 prefix of the encoded training pairs (kept in the trainer state).
    let dataFingerprint: String
    /// For the start-up summary.
    let counts: DataCounts
    /// The LoRA adapters to train (nil: full fine-tuning); set by `LoRASetup` after loading.
    var lora: LoRASetup.Start?

    /// How many parameters train: the adapters under LoRA, else every weight.
    var trainableCount: Int { lora?.initial.count ?? policyWeights.count }

    /// What reading and encoding kept and left out.
    struct DataCounts {
        var trainPairs: Int
        var evalPairs: Int
        var dropped: [(reason: String, count: Int)]
    }

    private init(config: LlamaConfig, policyWeights: [Float], referenceWeights: [Float]?, fingerprints: ModelFingerprints,
                 paddingId: Int32, train: [EncodedPair], eval: [EncodedPair]?, counts: DataCounts) {
        self.config = config
        self.policyWeights = policyWeights
        self.referenceWeights = referenceWeights
        self.fingerprints = fingerprints
        self.paddingId = paddingId
        self.train = train
        self.eval = eval
        self.dataFingerprint = LoadedInputs.dataFingerprint(train)
        self.counts = counts
    }

    /// `beforeWeights` runs once the data is encoded and before any weight is read (the fit check).
    static func load(_ p: TrainingParameters, communicator: Communicator, events: TrainingEvents,
                     timeline: StartupTimeline = StartupTimeline(),
                     beforeWeights: (LlamaConfig, [EncodedPair]) throws -> Void = { _, _ in }) throws -> LoadedInputs {
        // The config (its problems reported first, as before), then the data (it needs only the
        // tokenizer): its longest batch is what the fit check sizes before the weights load.
        let modelURL = URL(fileURLWithPath: p.modelDirectory)
        if let problem = FileProblem.directory(modelURL.path) { throw TrainingError.model("--model \(p.modelDirectory): \(problem)") }
        let shapes: LlamaConfig
        do {
            shapes = try ModelDirectory.loadConfig(modelURL)
            _ = try SafetensorsArchive(directory: modelURL)  // weights present and readable (headers only) before encoding
        } catch { throw TrainingError.model("--model \(p.modelDirectory): \(error)") }
        let tokenizer = try TrainingInputs.loadTokenizer(p.modelDirectory, flag: "--model")
        timeline.mark("config and tokenizer")
        let (train, eval, counts) = try loadData(p, tokenizer: tokenizer, events: events)
        timeline.mark("data")
        try beforeWeights(shapes, train)
        timeline.mark("memory check")
        let (config, weights) = try TrainingInputs.loadModel(p.modelDirectory, flag: "--model")
        var referenceWeights: [Float]?
        if p.loss.needsReference {
            if let referenceDirectory = p.referenceModelDirectory,
                URL(fileURLWithPath: referenceDirectory).standardizedFileURL != URL(fileURLWithPath: p.modelDirectory).standardizedFileURL {
                let (referenceConfig, loaded) = try TrainingInputs.loadModel(referenceDirectory, flag: "--ref-model")
                try TrainingInputs.checkSameArchitecture(policy: config, reference: referenceConfig, referenceDirectory: referenceDirectory)
                referenceWeights = loaded
            } else {
                referenceWeights = weights
            }
        }
        timeline.mark("model weights")
        let fingerprints = try ModelFingerprints.of(
            policyDirectory: p.modelDirectory, referenceDirectory: p.referenceModelDirectory, needsReference: p.loss.needsReference)
        timeline.mark("fingerprints")
        let inputs = LoadedInputs(
            config: config, policyWeights: weights, referenceWeights: referenceWeights, fingerprints: fingerprints,
            paddingId: tokenizer.paddingId, train: train, eval: eval, counts: counts)
        try inputs.checkAcrossRanks(communicator)
        try checkRows(train, config: config, file: p.dataFile, flag: "--data")
        if let eval, let evalFile = p.evalDataFile {
            try checkRows(eval, config: config, file: evalFile, flag: "--eval-data")
        }
        timeline.mark("checks")
        return inputs
    }

    /// The encoded training pairs (identical pairs filtered) and evaluation pairs.
    private static func loadData(
        _ p: TrainingParameters, tokenizer: any Tokenizer, events: TrainingEvents
    ) throws -> (train: [EncodedPair], eval: [EncodedPair]?, counts: DataCounts) {
        let train = try TrainingInputs.loadPairs(
            p.dataFile, flag: "--data", tokenizer: tokenizer, encoding: p.encodingOptions, reading: p.readOptions)
        events.message(train.summary)
        let identical = try IdenticalPairs.filter(
            train.pairs, skip: p.skipIdentical, loss: p.loss.kind, file: p.dataFile, flag: "--data")
        if let report = identical.report { events.message(report) }
        var dropped = DropReason.allCases.map { reason in
            (reason: reason.rawValue, count: train.outcomes.filter { if case .dropped(_, let r) = $0 { return r == reason } else { return false } }.count)
        }
        dropped.append((reason: "identical chosen and rejected", count: train.pairs.count - identical.pairs.count))
        var evalPairs: [EncodedPair]?
        if let evalFile = p.evalDataFile {
            let eval = try TrainingInputs.loadPairs(
                evalFile, flag: "--eval-data", tokenizer: tokenizer, encoding: p.encodingOptions, reading: p.readOptions)
            events.message(eval.summary)
            evalPairs = eval.pairs
        }
        return (identical.pairs, evalPairs, DataCounts(trainPairs: identical.pairs.count, evalPairs: evalPairs?.count ?? 0, dropped: dropped))
    }

    /// Each rank reads its own copy of the data: a stale copy on one host would give that rank
    /// another step count and leave the others waiting in a collective forever.
    private func checkAcrossRanks(_ communicator: Communicator) throws {
        guard communicator.size > 1 else { return }
        var parts = [(name: "training data (--data as encoded)", value: dataFingerprint)]
        if let eval { parts.append((name: "evaluation data (--eval-data as encoded)", value: Self.dataFingerprint(eval))) }
        // The reference, unlike the policy, is not broadcast from rank 0.
        if let reference = fingerprints.reference { parts.append((name: "reference weights (--ref-model, else --model)", value: reference)) }
        try communicator.verifySameRun(parts)
    }

    /// SHA-256 (prefix) of every encoded token of the training pairs, kept in the trainer
    /// state so a resume on changed data or encoding is noticed.
    static func dataFingerprint(_ pairs: [EncodedPair]) -> String {
        var hasher = SHA256()
        hasher.update(pairs: pairs)
        return hasher.finalize().prefix(12).map { String(format: "%02x", $0) }.joined()
    }

    /// Token ids inside the model's vocabulary, and rows no longer than the config's position
    /// limit (`rowPositionLimit`: a sliding window, dynamic RoPE, else max_position_embeddings).
    /// train, logps and eval all refuse here, with one message.
    static func checkRows(_ pairs: [EncodedPair], config: LlamaConfig, file: String, flag: String) throws {
        try checkTokenIds(pairs, vocabSize: config.vocabSize, file: file, flag: flag)
        let limit = config.rowPositionLimit
        guard let longest = pairs.map(\.longestRowLength).max(), longest > limit.tokens else { return }
        throw TrainingError.data(
            "\(flag) \(file): a row of \(longest) tokens is longer than \(limit.tokens) (config.json key \"\(limit.key)\": "
                + "\(limit.reason)); pass --max-length \(limit.tokens) or less (it caps prompt + completion)")
    }

    /// A tokenizer whose ids exceed the model's vocabulary would index past the embedding.
    static func checkTokenIds(_ pairs: [EncodedPair], vocabSize: Int, file: String, flag: String) throws {
        for pair in pairs {
            for part in [pair.prompt, pair.chosen, pair.rejected] {
                if let bad = part.first(where: { $0 < 0 || Int($0) >= vocabSize }) {
                    throw TrainingError.data(
                        "\(flag) \(file) encodes to token id \(bad), outside the model's vocab_size \(vocabSize): "
                            + "the tokenizer does not belong to this model")
                }
            }
        }
    }
}
