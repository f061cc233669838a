import Distributed
import Foundation
import Kernels
import Llama

/// ZeRO stage 1 (`--zero 1`): the optimizer state partitioned over ranks.
///
/// Each rank owns one contiguous shard of the flat parameter vector (`ParameterShards`,
/// about P / N elements): the fp32 master weights and the AdamW moments of that shard only,
/// so per rank they cost 12 P / N bytes instead of 12 P. A step:
/// 1. backward hands finished layer groups to `GradientReduceScatter`, whose bucketed
///    reduce-scatters overlap the rest of backward; `finish` leaves this rank's shard of the
///    mean gradient [P / N];
/// 2. `gradientNorm`: the global norm of the unscaled gradient = sqrt(sum over ranks of the
///    shard's sum of squares) (one all-reduce of a Double); the step derives the clipping factor;
/// 3. `update`: one fused sweep (`FlatOptimizer.step(...scaling:output:)`) unscales and clips
///    the shard gradients, updates the master shard and writes it into the policy's working
///    weights (rounded to fp16 under `--precision fp16`), then an in-place all-gather of the
///    working weights (fp32 or fp16 on the wire), so every rank runs the same model.
///
/// ZeRO stage 2 (`--zero 2`) is the same optimizer over `PartitionedGradients`: the gradients
/// too are kept for the shard only (see there).
///
/// Every rank's working weights are the same bytes after each step by construction. The full
/// fp32 master weights exist only while `gatherMasterWeights` (a collective) is in use:
/// checkpoints and the final check.
public final class ShardedOptimizer {
    public let communicator: Communicator
    /// The optimizer of this rank's shard (its `range` is `shard`).
    public let optimizer: FlatOptimizer
    /// fp32 master weights of this rank's shard [shard.count]: one long-lived buffer.
    public let masterShard: ScalarBuffer<Float>
    /// The gradient reduction: ZeRO-1's `GradientReduceScatter` or ZeRO-2's `PartitionedGradients`.
    private let scatter: any ShardGradientReduction
    /// Wall seconds of the last `update`'s all-gather of the working weights (the bench's
    /// `weight_gather` phase).
    public private(set) var lastGatherSeconds = 0.0

    /// ZeRO-1: reduce-scatters `gradients`.
    /// - Parameters:
    ///   - masterWeights: the full fp32 weights [P] (identical on every rank); only the shard is kept.
    ///   - optimizer: an optimizer over `ParameterShards.ranges(total: P, ranks: N)[rank]`.
    ///   - gradients: the flat gradient buffer backward accumulates into [P]; kept, not copied.
    public convenience init(communicator: Communicator, masterWeights: UnsafeBufferPointer<Float>, optimizer: FlatOptimizer,
                            gradients: UnsafeMutableBufferPointer<Float>, groupRanges: [Range<Int>], bucketMegabytes: Double,
                            wireType: GradientReducer.WireType) throws {
        try self.init(communicator: communicator, masterWeights: masterWeights, optimizer: optimizer, reduction: try GradientReduceScatter(
            communicator: communicator, gradients: gradients, groupRanges: groupRanges, bucketMegabytes: bucketMegabytes,
            wireType: wireType))
    }

    /// Over any shard reduction (ZeRO-2: `PartitionedGradients`); its shards must be `optimizer`'s.
    public init(communicator: Communicator, masterWeights: UnsafeBufferPointer<Float>, optimizer: FlatOptimizer,
                reduction: any ShardGradientReduction) throws {
        let shard = ParameterShards.ranges(total: masterWeights.count, ranks: communicator.size)[communicator.rank]
        guard optimizer.range == shard, reduction.shards[communicator.rank] == shard else {
            throw TrainingError.checkpoint(
                "--zero: rank \(communicator.rank) of \(communicator.size) owns elements \(shard) of the parameters, "
                    + "its optimizer state covers \(optimizer.range)")
        }
        self.communicator = communicator
        self.optimizer = optimizer
        self.masterShard = ScalarBuffer(copying: UnsafeBufferPointer(rebasing: masterWeights[shard]))
        self.scatter = reduction
    }

    /// This rank's elements of the flat parameter vector.
    public var shard: Range<Int> { optimizer.range }
    /// Every rank's shard, by rank.
    public var shards: [Range<Int>] { scatter.shards }
    public var wireType: GradientReducer.WireType { scatter.wireType }
    /// This rank's shard of the last step's mean gradient (unscaled and clipped after `clip`).
    public var shardGradients: UnsafeMutableBufferPointer<Float> { scatter.shardGradients }

    // MARK: - A step

    /// The model's `groupFinished` callback on the last micro-batch.
    public func groupReady(_ group: Int) { scatter.groupReady(group) }

    /// The reduction's bucket hook (`ShardGradientReduction.bucketFilled`): the bench's peak-memory probe.
    public var bucketFilled: (() -> Void)? {
        get { scatter.bucketFilled }
        set { scatter.bucketFilled = newValue }
    }

    /// Waits for the reduce-scatters: `shardGradients` then hold this rank's shard of the mean.
    public func finish() -> GradientReducer.Reduction { scatter.finish() }

    /// The global norm of the unscaled gradient, `unscale` x the mean over ranks (PyTorch's
    /// norm before clipping): each rank's shard sum of squares, summed over ranks. Collective.
    public func gradientNorm(unscale: Float) -> Double {
        let squares = SumOfSquares.of(UnsafeBufferPointer(shardGradients), scale: unscale)
        return communicator.sum([squares])[0].squareRoot()
    }

    /// One optimizer update of the master shard from the (finite) shard gradients, scaled on
    /// the way by `scaling` (unscale, clip), then the new working weights everywhere: the sweep
    /// writes the shard into `policy`'s working weights and the ranks all-gather them in place.
    /// `afterUpdate` (test faults) sees the master shard.
    public func update(policy: LlamaModel, learningRate: Double, scaling: FlatOptimizer.GradientScaling,
                       afterUpdate: ((inout [Float]) -> Void)? = nil) {
        let counts = shards.map(\.count)
        let offset = shard.lowerBound
        policy.withWorkingWeights { weights in
            let output: AdamWSweep.Output
            switch weights {
            case .fp32(let buffer): output = .fp32(buffer.baseAddress! + offset)
            case .fp16(let buffer): output = .fp16(buffer.baseAddress! + offset)
            }
            optimizer.step(weights: masterShard.buffer, gradients: shardGradients, scaling: scaling, learningRate: learningRate,
                           output: output)
        }
        if let afterUpdate {  // test faults only: a copy, then the working weights again
            var copy = masterShard.array
            afterUpdate(&copy)
            copy.withUnsafeBufferPointer { masterShard.update(from: $0) }
            masterShard.withUnsafeBufferPointer { policy.loadWeights($0, at: offset) }
        }
        let gatherStart = ContinuousClock.now
        defer { lastGatherSeconds = DPOStep.seconds(ContinuousClock.now - gatherStart) }
        policy.withWorkingWeights { weights in
            switch weights {
            case .fp32(let buffer): communicator.allGatherInPlace(buffer, counts: counts)
            case .fp16(let buffer): communicator.allGatherInPlaceHalf(buffer, counts: counts)
            }
        }
    }

    // MARK: - Whole weights and state

    /// The full fp32 master weights [P], every rank's shard gathered (a collective: every rank
    /// calls it at the same point). For checkpoints and the final check.
    public func gatherMasterWeights() -> [Float] {
        let counts = shards.map(\.count)
        var full = [Float](repeating: 0, count: counts.reduce(0, +))
        full.withUnsafeMutableBufferPointer { buffer in
            if !shard.isEmpty { (buffer.baseAddress! + shard.lowerBound).update(from: masterShard.pointer, count: shard.count) }
            communicator.allGatherInPlace(buffer, counts: counts)
        }
        return full
    }
}
