import Distributed
import Foundation
import Llama

/// ZeRO stage 1 (`--zero 1`): the optimizer state partitioned over ranks.
///
/// Each rank owns one contiguous shard of the flat parameter vector (`ParameterShards`,
/// about P / N elements): the fp32 master weights and the AdamW moments of that shard only,
/// so per rank they cost 12 P / N bytes instead of 12 P. A step:
/// 1. backward hands finished layer groups to `GradientReduceScatter`, whose bucketed
///    reduce-scatters overlap the rest of backward; `finish` leaves this rank's shard of the
///    mean gradient [P / N];
/// 2. `clip`: unscale the shard, the global norm = sqrt(sum over ranks of the squared shard
///    norms) (one all-reduce of a Double), scale the shard as `GradientClipping.clip` would;
/// 3. `update`: `FlatOptimizer.step` on the master shard, the shard written into the policy's
///    working weights (rounded to fp16 under `--precision fp16`), then an in-place all-gather of
///    the working weights (fp32 or fp16 on the wire), so every rank runs the same model.
///
/// Every rank's working weights are the same bytes after each step by construction. The full
/// fp32 master weights exist only while `gatherMasterWeights` (a collective) is in use:
/// checkpoints and the final check.
public final class ShardedOptimizer {
    public let communicator: Communicator
    /// The optimizer of this rank's shard (its `range` is `shard`).
    public let optimizer: FlatOptimizer
    /// fp32 master weights of this rank's shard [shard.count].
    public private(set) var masterShard: [Float]
    private let scatter: GradientReduceScatter

    /// - Parameters:
    ///   - masterWeights: the full fp32 weights [P] (identical on every rank); only the shard is kept.
    ///   - optimizer: an optimizer over `ParameterShards.ranges(total: P, ranks: N)[rank]`.
    ///   - gradients: the flat gradient buffer backward accumulates into [P]; kept, not copied.
    public init(communicator: Communicator, masterWeights: UnsafeBufferPointer<Float>, optimizer: FlatOptimizer,
                gradients: UnsafeMutableBufferPointer<Float>, groupRanges: [Range<Int>], bucketMegabytes: Double,
                wireType: GradientReducer.WireType) throws {
        let shard = ParameterShards.ranges(total: masterWeights.count, ranks: communicator.size)[communicator.rank]
        guard optimizer.range == shard else {
            throw TrainingError.checkpoint(
                "--zero 1: rank \(communicator.rank) of \(communicator.size) owns elements \(shard) of the parameters, "
                    + "its optimizer state covers \(optimizer.range)")
        }
        self.communicator = communicator
        self.optimizer = optimizer
        self.masterShard = Array(masterWeights[shard])
        self.scatter = try GradientReduceScatter(
            communicator: communicator, gradients: gradients, groupRanges: groupRanges, bucketMegabytes: bucketMegabytes,
            wireType: wireType)
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

    /// Waits for the reduce-scatters: `shardGradients` then hold this rank's shard of the mean.
    public func finish() -> GradientReducer.Reduction { scatter.finish() }

    /// Unscales the shard by 1 / `lossScale`, returns the global gradient norm (before clipping)
    /// and scales the shard by PyTorch's factor maxNorm / (norm + 1e-6) when below 1 (as
    /// `GradientClipping.clip` does for a whole buffer). `maxNorm <= 0`: no clipping. Collective.
    public func clip(lossScale: Double, maxNorm: Double) -> Double {
        let g = shardGradients
        if lossScale != 1 {
            let inverseScale = Float(1 / lossScale)
            for i in 0..<g.count { g[i] *= inverseScale }
        }
        let shardNorm = GradientClipping.globalNorm(UnsafeBufferPointer(g))
        let norm = communicator.sum([shardNorm * shardNorm])[0].squareRoot()
        guard maxNorm > 0, norm.isFinite else { return norm }
        let coefficient = maxNorm / (norm + 1e-6)
        if coefficient < 1 {
            let scale = Float(coefficient)
            for i in 0..<g.count { g[i] *= scale }
        }
        return norm
    }

    /// One optimizer update of the master shard from the (finite, clipped) shard gradients,
    /// then the new working weights everywhere: the shard goes into `policy`, and the ranks
    /// all-gather the working weights in place. `afterUpdate` (test faults) sees the master shard.
    public func update(policy: LlamaModel, learningRate: Double, afterUpdate: ((inout [Float]) -> Void)? = nil) {
        masterShard.withUnsafeMutableBufferPointer { w in
            optimizer.step(weights: w, gradients: UnsafeBufferPointer(shardGradients), learningRate: learningRate)
        }
        afterUpdate?(&masterShard)
        masterShard.withUnsafeBufferPointer { policy.loadWeights($0, at: shard.lowerBound) }
        let counts = shards.map(\.count)
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
            if !shard.isEmpty { (buffer.baseAddress! + shard.lowerBound).update(from: masterShard, count: shard.count) }
            communicator.allGatherInPlace(buffer, counts: counts)
        }
        return full
    }
}
