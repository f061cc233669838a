import Foundation
import Preference

/// `trainer_state.json`: what a checkpoint needs, beside the weights and optimizer moments,
/// for `--resume` to continue as if the run had never stopped.
public struct TrainerState: Codable, Equatable, Sendable {
    /// Optimizer steps taken (skipped non-finite steps count: they consumed their data).
    public var globalStep: Int = 0
    /// Fractional epoch, as TRL logs it: globalStep / stepsPerEpoch.
    public var epoch: Double = 0
    /// Data position: the epoch and the batch within it that the next step takes.
    public var epochIndex: Int = 0
    public var batchInEpoch: Int = 0
    /// The data order is a pure function of (seed, epoch, world size, per-rank batch), so this
    /// seed *is* the random state; the trainer has no other randomness.
    public var seed: Int = 0
    /// SHA-256 prefix of the encoded training pairs (a resume on other data is reported).
    public var dataFingerprint: String = ""
    /// SHA-256 of the policy's starting weights and of the reference (nil in checkpoints written before they were recorded).
    public var modelFingerprints: ModelFingerprints?
    /// The batch geometry the state was written with (for resuming at another world size).
    public var worldSize: Int = 1
    public var batchPairs: Int = 1
    public var gradAccum: Int = 1
    public var lossScaler = DynamicLossScaler(enabled: false)
    /// Training input tokens (chosen + rejected rows, all ranks) so far.
    public var trainTokens: Double = 0
    /// Metric sums of the steps since the last log (PreferenceMetricSums.packed), so a resumed
    /// run logs exactly what the uninterrupted one would.
    public var pendingMetricSums: [Double] = []
    public var pendingSteps: Int = 0
    /// Every logged record so far, in order (replayed into the metrics sink on resume).
    public var logHistory: [LogRecord] = []

    /// One logged step: metric names and values in the order they were logged.
    public struct LogRecord: Codable, Equatable, Sendable {
        public var step: Int
        public var names: [String]
        public var values: [Double]
    }

    public init() {}

    enum CodingKeys: String, CodingKey {
        case globalStep = "global_step", epoch, epochIndex = "epoch_index", batchInEpoch = "batch_in_epoch", seed
        case dataFingerprint = "data_fingerprint", modelFingerprints = "model_fingerprints"
        case worldSize = "world_size", batchPairs = "batch_pairs", gradAccum = "grad_accum"
        case lossScaler = "loss_scaler", trainTokens = "train_tokens", pendingMetricSums = "pending_metric_sums"
        case pendingSteps = "pending_steps", logHistory = "log_history"
    }

    public static let fileName = "trainer_state.json"

    public func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return try encoder.encode(self)
    }

    public static func decode(_ data: Data, source: String) throws -> TrainerState {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        do { return try decoder.decode(TrainerState.self, from: data) } catch {
            // It matched its manifest (verified before reading), so it was saved so or edited with it: not skipped, said.
            let checkpoint = (source as NSString).deletingLastPathComponent
            throw TrainingError.checkpoint(
                "\(source) is not a valid trainer state: \(FileProblem.cause(of: error, in: [UInt8](data))); the checkpoint cannot be resumed: "
                    + "move \(checkpoint) away and run again with --resume auto to continue from the checkpoint before it")
        }
    }
}
