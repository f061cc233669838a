import Distributed
import Foundation
import Llama
import Preference

/// A run ready for its first step: what `TrainingSetup.prepare` built, what the loop reads.
struct PreparedRun {
    /// The options as resolved (on resume, `gradAccum` may differ from the flag to keep the global batch).
    let parameters: TrainingParameters
    let communicator: Communicator
    let config: LlamaConfig
    let trainPairs: [EncodedPair]
    let evalPairs: [EncodedPair]?
    let paddingId: Int32
    let plan: RunPlan
    /// The trainer state to continue (fresh, or the checkpoint's), kept in step by the loop.
    let state: TrainerState
    /// The checkpoint's state when resuming (tokens and skips already counted before this run).
    let restoredState: TrainerState?
    let step: DPOStep
    let evalReference: ReferenceLogps
    /// Rank 0's metrics sink (nil elsewhere).
    let sink: MetricsSink?
    /// Held for the whole run (rank 0); released when the run ends.
    let runLock: RunLock?
    let dataCounts: LoadedInputs.DataCounts

    var isPrimary: Bool { communicator.rank == 0 }
    var store: CheckpointStore { CheckpointStore(outputDirectory: URL(fileURLWithPath: parameters.outputDirectory)) }
}
