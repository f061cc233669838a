/// What ZeRO's sharded optimizer needs from a gradient reduction: backward's `groupFinished`
/// callback, a `finish` that leaves this rank's shard of the mean gradient in `shardGradients`,
/// and the shards. Stage 1 is `GradientReduceScatter` (backward writes a whole [P] buffer);
/// stage 2 is `PartitionedGradients` (backward writes a window whose pages go once sent, and
/// each micro-batch's shard of the mean is accumulated).
public protocol ShardGradientReduction: AnyObject {
    /// Each rank's shard of the flat vector, by rank.
    var shards: [Range<Int>] { get }
    var wireType: GradientReducer.WireType { get }
    /// This rank's shard of the mean gradient [shards[rank].count], valid after `finish()`.
    var shardGradients: UnsafeMutableBufferPointer<Float> { get }
    /// Group `group`'s gradients are final (the model's `groupFinished` callback).
    func groupReady(_ group: Int)
    /// Waits for every bucket and agrees with the other ranks on `nonFinite`; resets the buckets.
    func finish() -> GradientReducer.Reduction
    /// Called as each bucket is about to go (the bench's peak-memory probe); nil in training.
    var bucketFilled: (() -> Void)? { get set }
}

extension GradientReduceScatter: ShardGradientReduction {}
