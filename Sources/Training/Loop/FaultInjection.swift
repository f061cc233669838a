import Foundation

/// Test-only faults, so the reliability tests can make the real trainer fail on purpose
/// under `mpirun` (a rank that throws, dies, sees a NaN, drifts apart, or stops).
///
/// Read from the environment variable `DPO_FAULT_INJECT` (never from a flag: users should
/// not meet it in `--help`). The value is a `;`-separated list of faults, each
/// `kind[:rank=R][:step=S][:ms=N]`; without `rank` a fault applies on every rank, without
/// `step` at every step. Steps count from 1, as the trainer's messages do ("step 3"); `step=0`
/// is start-up, before anything is loaded or written (`delay`, `kill`, `throw` only; a fault
/// without `step` does not apply there).
///
/// | kind    | what happens on the chosen rank(s) at the chosen step(s)                              |
/// |---------|----------------------------------------------------------------------------------------|
/// | throw   | throws `TrainingError.injectedFault` before the step's forward                          |
/// | kill    | SIGKILL to itself before the step's forward                                              |
/// | nan     | NaN in this rank's averaged gradients (after the all-reduce, so only this rank sees it) |
/// | zero    | zeroes this rank's averaged gradients (a step that changes nothing, for comparisons)    |
/// | diverge | after the update, this rank's first master weight moves by one ulp                     |
/// | stop    | asks for a stop after the step, as SIGTERM would (on this rank only)                  |
/// | delay   | sleeps `ms` milliseconds before the step (slow steps for the signal tests)            |
///
///     DPO_FAULT_INJECT="throw:rank=1:step=3"  mpirun -np 2 dpo train ...
public struct FaultInjection: Equatable, Sendable {
    public static let environmentVariable = "DPO_FAULT_INJECT"

    public enum Kind: String, CaseIterable, Sendable {
        case throwError = "throw", kill, nan, zero, diverge, stop, delay
    }

    public struct Fault: Equatable, Sendable {
        public var kind: Kind
        /// nil = every rank.
        public var rank: Int?
        /// 1-based optimizer step; nil = every step.
        public var step: Int?
        public var milliseconds: Int = 0
    }

    public var faults: [Fault]

    /// Parses the `DPO_FAULT_INJECT` syntax; an unknown kind or key is an error (a typo must
    /// not silently test nothing).
    public static func parse(_ text: String) throws -> FaultInjection {
        var faults: [Fault] = []
        for item in text.split(separator: ";").map({ $0.trimmingCharacters(in: .whitespaces) }) where !item.isEmpty {
            let fields = item.split(separator: ":").map(String.init)
            guard let kind = Kind(rawValue: fields[0]) else {
                throw TrainingError.invalidOption(
                    "\(environmentVariable): unknown fault '\(fields[0])' in '\(item)'; kinds: \(Kind.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            var fault = Fault(kind: kind)
            for field in fields.dropFirst() {
                let pair = field.split(separator: "=", maxSplits: 1).map(String.init)
                guard pair.count == 2, let value = Int(pair[1]), value >= 0 else {
                    throw TrainingError.invalidOption("\(environmentVariable): '\(field)' in '\(item)' is not key=number")
                }
                switch pair[0] {
                case "rank": fault.rank = value
                case "step": fault.step = value
                case "ms": fault.milliseconds = value
                default: throw TrainingError.invalidOption("\(environmentVariable): unknown key '\(pair[0])' in '\(item)' (rank, step, ms)")
                }
            }
            faults.append(fault)
        }
        return FaultInjection(faults: faults)
    }

    /// The faults of the environment, nil when `DPO_FAULT_INJECT` is unset or empty.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> FaultInjection? {
        guard let text = environment[environmentVariable], !text.isEmpty else { return nil }
        return try parse(text)
    }

    /// The faults of `kind` that apply on `rank` at 1-based `step`.
    func matching(_ kind: Kind, rank: Int, step: Int) -> [Fault] {
        faults.filter { $0.kind == kind && ($0.rank ?? rank) == rank && ($0.step ?? step) == step }
    }

    func contains(_ kind: Kind, rank: Int, step: Int) -> Bool { !matching(kind, rank: rank, step: step).isEmpty }
}
