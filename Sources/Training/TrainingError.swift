import Foundation

/// Why training (or checkpointing, evaluation, log-prob scoring) could not go on.
///
/// Every case carries a message that names the cause and, where there is one, the file
/// and what to do about it.
public enum TrainingError: Error, CustomStringConvertible, LocalizedError {
    /// A command-line / config option has a value the trainer cannot use.
    case invalidOption(String)
    /// Model directories that cannot be used together or at all.
    case model(String)
    /// The data: empty, all pairs dropped, unreadable.
    case data(String)
    /// The output directory: not writable, not enough space, a save that failed.
    case output(String)
    /// A checkpoint that cannot be resumed from.
    case checkpoint(String)
    /// The run would not fit in the memory available to a rank (the fit check before loading).
    case memory(String)
    /// Too many non-finite steps in a row, or a non-finite value that cannot be skipped.
    case numerical(String)
    /// A fault injected on purpose through `DPO_FAULT_INJECT` (tests only).
    case injectedFault(String)

    public var description: String {
        switch self {
        case .invalidOption(let m): return "invalid option: \(m)"
        case .model(let m): return "model: \(m)"
        case .data(let m): return "data: \(m)"
        case .output(let m): return "output directory: \(m)"
        case .checkpoint(let m): return "checkpoint: \(m)"
        case .memory(let m): return "memory: \(m)"
        case .numerical(let m): return "numerical failure: \(m)"
        case .injectedFault(let m): return "injected fault (\(FaultInjection.environmentVariable)): \(m)"
        }
    }

    public var errorDescription: String? { description }
}
