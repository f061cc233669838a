import Distributed
import Foundation
import Kernels
import Llama
import Preference

/// What a finished (or stopped) run did.
public struct TrainingSummary: Sendable {
    public var startStep: Int
    public var finalStep: Int
    public var totalSteps: Int
    public var skippedSteps: Int
    /// The last logged training metrics and the last evaluation, if any.
    public var lastMetrics: [(name: String, value: Double)]
    public var lastEvalMetrics: [(name: String, value: Double)]
    /// Where `final/` (or, when stopped by a signal, the checkpoint) was written; nil on other ranks.
    public var savedDirectory: URL?
    /// True when a stop signal (or the event callback) ended the run early.
    public var stoppedBySignal: Bool
}

/// The DPO trainer: `TrainingSetup.prepare` (inputs, resume, plan, OUT, the `DPOStep`), then
/// `TrainingLoop` (the steps, logging, evaluation, checkpoints), reporting through one callback.
///
///     let trainer = DPOTrainer(parameters: p, communicator: World.initialize())
///     let summary = try trainer.run { event in
///         if case .message(let text) = event { print(text) }
///         return .more
///     }
///
/// Distributed roles: every rank runs the same steps on its shard of each global batch;
/// gradients are averaged by `GradientReducer` as backward finishes each layer; rank 0
/// alone writes files and receives the events.
public struct DPOTrainer {
    public let parameters: TrainingParameters
    public let communicator: Communicator
    /// Creates the metrics sink on rank 0 from (OUT, the step a resumed run continues from).
    public let makeMetricsSink: (URL, Int?) throws -> MetricsSink
    /// Test-only faults (default: those of `DPO_FAULT_INJECT`, normally none).
    public let testHooks: TrainingTestHooks

    /// - Parameter makeMetricsSink: default metrics.jsonl (keeping its lines up to the resumed step) + TensorBoard in OUT.
    public init(
        parameters: TrainingParameters, communicator: Communicator,
        makeMetricsSink: @escaping (URL, Int?) throws -> MetricsSink = { try FanOutMetricsSink.standard(outputDirectory: $0, resumingFromStep: $1) },
        testHooks: TrainingTestHooks = TrainingTestHooks()
    ) {
        self.parameters = parameters
        self.communicator = communicator
        self.makeMetricsSink = makeMetricsSink
        self.testHooks = testHooks
    }

    /// Trains; `onEvent` (rank 0) gets messages, the start-up summary and progress, and may ask for a stop.
    public func run(onEvent: ((TrainingEvent) -> TrainingDisposition)? = nil) throws -> TrainingSummary {
        try parameters.validate()
        // Start-up: a stop signal ends the process at once (see ShutdownSignal.setImmediate),
        // rank 0 saying so on stderr (TrainingSetup changes the note once OUT is taken).
        ShutdownSignal.setImmediate(true)
        if communicator.rank == 0 { ShutdownSignal.setImmediateNote(StartupStopNote.beforeOutput) }
        defer {
            ShutdownSignal.setImmediate(false)
            ShutdownSignal.setImmediateNote(nil)
        }
        BLAS.ensureBestCore()
        let runtimeBytes = ProcessMemory.residentBytes()
        let hooks = ActiveTestHooks(faults: try testHooks.resolvedFaults(), gradients: testHooks.gradients, rank: communicator.rank)
        // Each rank takes its share of the host's cores (ranks on one host would oversubscribe it otherwise).
        let previousThreads = BLAS.threads
        if communicator.size > 1 || parameters.threads != nil {
            BLAS.threads = ThreadShare.threads(for: communicator, override: parameters.threads)
        }
        defer { BLAS.threads = previousThreads }
        let events = TrainingEvents(isPrimary: communicator.rank == 0, handler: onEvent)
        try hooks.beforeStartup(events)
        let prepared = try TrainingSetup.prepare(parameters, communicator: communicator, events: events, makeMetricsSink: makeMetricsSink)
        defer { try? prepared.sink?.close(); prepared.runLock?.release() }
        events.send(.startup(StartupFacts.summary(of: prepared, runtimeBytes: runtimeBytes)))
        events.message(StartupFacts.planLine(of: prepared))
        return try TrainingLoop(run: prepared, events: events, hooks: hooks).train()
    }
}

/// What a stop signal that ends start-up at once says on rank 0's stderr, after
/// `stopped by SIGINT (Ctrl-C)`: what was cut short and what is left in OUT.
enum StartupStopNote {
    /// Until OUT is taken (inputs loaded and checked): OUT is not touched yet.
    static let beforeOutput = " during start-up (loading the model and data, before the first step): "
        + "nothing was written; run the same command to start again"
    /// From OUT's lock on (resume, train_config.json, building the models): no step, no checkpoint.
    static let afterOutput = " during start-up (preparing OUT and the models, before the first step): "
        + "no checkpoint was written; run the same command to start again"
}
