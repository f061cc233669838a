/// Wall-clock seconds one optimizer step spent in each phase (this rank), for `dpo bench dpo`.
public struct StepPhaseSeconds: Sendable, Equatable {
    /// Building the batches and the step's global counts (an all-reduce of three numbers).
    public var data = 0.0
    /// Reference forward (0 with `--precompute-ref`: a lookup).
    public var referenceForward = 0.0
    /// Policy forward, including packing shared prompts.
    public var policyForward = 0.0
    /// Loss, per-token gradients and the policy backward (with the overlapped bucket all-reduces started inside).
    public var backward = 0.0
    /// Waiting for the gradient all-reduce after backward (`GradientReducer.finish`).
    public var allReduceWait = 0.0
    /// Unscaling, clipping, the finite check across ranks, the optimizer and loading the new weights.
    public var optimizer = 0.0
    /// `--zero 1`: the blocking all-gather of the updated working weights after the optimizer
    /// (`ShardedOptimizer.update`), waiting for the other ranks included; 0 with `--zero 0`.
    public var weightGather = 0.0

    public init() {}

    public var total: Double { data + referenceForward + policyForward + backward + allReduceWait + optimizer + weightGather }
}
