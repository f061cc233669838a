import Foundation

/// Test-only ways to make a run fail on purpose; the CLI never builds one (it passes the
/// default, which reads `DPO_FAULT_INJECT`). Kept out of `DPOStep` and the loop body: the
/// loop asks it at three fixed points (before a step, inside it through `StepFaults`, at the
/// stop check) and nothing else knows it exists.
public struct TrainingTestHooks {
    /// Faults by rank and step; nil: read `DPO_FAULT_INJECT` when the run starts.
    public var faults: FaultInjection?
    /// Called with (0-based step, this rank's averaged gradients) after the reduction, before unscaling.
    public var gradients: ((Int, UnsafeMutableBufferPointer<Float>) -> Void)?

    public init(faults: FaultInjection? = nil, gradients: ((Int, UnsafeMutableBufferPointer<Float>) -> Void)? = nil) {
        self.faults = faults
        self.gradients = gradients
    }

    /// The faults of this run: the given ones, else the environment's.
    func resolvedFaults() throws -> FaultInjection {
        try faults ?? FaultInjection.fromEnvironment() ?? FaultInjection(faults: [])
    }
}

/// The hooks of one run on one rank, resolved.
struct ActiveTestHooks {
    let faults: FaultInjection
    let gradients: ((Int, UnsafeMutableBufferPointer<Float>) -> Void)?
    let rank: Int

    /// `delay`, `kill` and `throw` faults of 1-based `step`, before its forward.
    func beforeStep(_ step: Int) throws {
        guard !faults.faults.isEmpty else { return }
        for fault in faults.matching(.delay, rank: rank, step: step) { usleep(UInt32(fault.milliseconds) * 1000) }
        if faults.contains(.kill, rank: rank, step: step) { kill(getpid(), SIGKILL) }
        if faults.contains(.throwError, rank: rank, step: step) {
            throw TrainingError.injectedFault("rank \(rank) throws at step \(step)")
        }
    }

    /// `delay`, `kill` and `throw` faults given `step=0`: at start-up, before anything is loaded
    /// or written (a fault without a step does not apply here). A delay says so on rank 0, so a
    /// test knows when its signal lands in start-up.
    func beforeStartup(_ events: TrainingEvents) throws {
        let startup = FaultInjection(faults: faults.faults.filter { $0.step == 0 })
        for fault in startup.matching(.delay, rank: rank, step: 0) {
            events.message("\(FaultInjection.environmentVariable): start-up held for \(fault.milliseconds) ms")
            usleep(UInt32(fault.milliseconds) * 1000)
        }
        if startup.contains(.kill, rank: rank, step: 0) { kill(getpid(), SIGKILL) }
        if startup.contains(.throwError, rank: rank, step: 0) { throw TrainingError.injectedFault("rank \(rank) throws at start-up") }
    }

    /// `stop` after 1-based `step`.
    func stopsAfter(_ step: Int) -> Bool { faults.contains(.stop, rank: rank, step: step) }

    /// The step's share: the gradient hook, then `nan`, `zero` and `diverge` (steps count from 1 there).
    var stepFaults: StepFaults? {
        guard gradients != nil || !faults.faults.isEmpty else { return nil }
        let (faults, rank, hook) = (self.faults, self.rank, self.gradients)
        return StepFaults(
            afterReduction: { step, g in
                hook?(step, g)
                if faults.contains(.nan, rank: rank, step: step + 1) { g[0] = .nan }
                if faults.contains(.zero, rank: rank, step: step + 1) { for i in 0..<g.count { g[i] = 0 } }
            },
            afterUpdate: { step, master in
                if faults.contains(.diverge, rank: rank, step: step + 1) { master[0] = master[0].nextUp }
            })
    }
}
