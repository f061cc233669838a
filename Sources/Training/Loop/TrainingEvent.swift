/// What a run reports, through the one callback of `DPOTrainer.run(onEvent:)` (rank 0 only).
public enum TrainingEvent: Sendable {
    /// A start-up fact, a checkpoint or evaluation notice, a warning: one line of text.
    case message(String)
    /// The run's shape and estimated memory, once before the first step.
    case startup(ProgressStartupSummary)
    /// After every optimizer step.
    case progress(ProgressSnapshot)
}

/// The callback's answer: go on, or stop after the current step with a checkpoint (as a
/// stop signal would; the ranks agree on it once per step). A stop asked during start-up
/// ends the run before its first step, writing nothing.
public enum TrainingDisposition: Sendable {
    case more
    case stop
}

/// Hands events to the caller's callback on rank 0 and remembers a requested stop.
final class TrainingEvents {
    let isPrimary: Bool
    private let handler: ((TrainingEvent) -> TrainingDisposition)?
    private(set) var stopRequested = false

    init(isPrimary: Bool, handler: ((TrainingEvent) -> TrainingDisposition)?) {
        self.isPrimary = isPrimary
        self.handler = handler
    }

    func send(_ event: TrainingEvent) {
        guard isPrimary, let handler else { return }
        if handler(event) == .stop { stopRequested = true }
    }

    func message(_ text: String) { send(.message(text)) }
}
