import CMPIShim
import Foundation

/// ZeRO-1's gradient reduction: like `GradientReducer` (same buckets, started from the
/// model's `groupFinished` callback so they overlap backward, same pre-division by the world
/// size and inf/NaN check, fp32 or fp16 on the wire), but each bucket is reduce-scattered
/// (MPI_Ireduce_scatter) instead of all-reduced: this rank receives only the mean of the
/// elements of its own shard, into `shardGradients`, which is all its optimizer updates.
///
/// Shards are contiguous ranges of the flat parameter vector, rank 0 first
/// (`ParameterShards.ranges`). A bucket [a, b) sends b - a elements; rank r receives
/// |[a, b) ∩ shard r| of them (often 0) at offset max(a, shard r start) - shard r start.
///
/// Use, once per optimizer step, exactly as `GradientReducer`:
///
///     model.backward(dTokenLogps: d, gradients: grads, groupFinished: scatter.groupReady)
///     let reduction = scatter.finish()   // shardGradients now hold this rank's shard of the mean
///
/// After `finish()` the full gradient buffer holds this rank's pre-divided local gradients,
/// not the mean: only `shardGradients` is meaningful.
public final class GradientReduceScatter {
    public let communicator: Communicator
    public let wireType: GradientReducer.WireType
    public var buckets: [GradientBucket] { schedule.buckets }
    /// Each rank's shard of the flat vector, by rank.
    public let shards: [Range<Int>]
    /// This rank's shard of the mean gradient [shards[rank].count], valid after `finish()`.
    public let shardGradients: UnsafeMutableBufferPointer<Float>
    private let gradients: UnsafeMutableBufferPointer<Float>
    /// fp16 send buffer, same indexing as `gradients`, and fp16 receive buffer, same indexing as
    /// `shardGradients` (both empty for fp32 or one rank).
    private let wire: UnsafeMutableBufferPointer<UInt16>
    private let wireShard: UnsafeMutableBufferPointer<UInt16>

    /// Which buckets are waiting, in flight or reduced (shared with `GradientReduceScatter`).
    private let schedule: BucketSchedule

    /// Same parameters as `GradientReducer.init`; the shards come from the communicator's size.
    public init(communicator: Communicator, gradients: UnsafeMutableBufferPointer<Float>, groupRanges: [Range<Int>],
                bucketMegabytes: Double = 25, wireType: GradientReducer.WireType = .fp32) throws {
        self.communicator = communicator
        self.wireType = wireType
        self.gradients = gradients
        let buckets = try GradientBucket.plan(
            gradientCount: gradients.count, groupRanges: groupRanges, bucketMegabytes: bucketMegabytes, wireBytes: wireType.bytes)
        self.schedule = BucketSchedule(buckets: buckets, groupCount: groupRanges.count)
        self.shards = ParameterShards.ranges(total: gradients.count, ranks: communicator.size)
        let shardCount = shards[communicator.rank].count
        shardGradients = .allocate(capacity: shardCount)
        shardGradients.initialize(repeating: 0)
        let needsWire = wireType == .fp16 && communicator.size > 1
        wire = .allocate(capacity: needsWire ? gradients.count : 0)
        wireShard = .allocate(capacity: needsWire ? shardCount : 0)
    }

    deinit {
        schedule.waitForAll()  // before the staging buffers the collectives use are freed
        shardGradients.deallocate()
        wire.deallocate()
        wireShard.deallocate()
    }

    /// This rank's shard.
    public var shard: Range<Int> { shards[communicator.rank] }

    // MARK: - During backward

    /// Group `group`'s gradients are final: start every bucket that is now complete, and
    /// advance the ones in flight (the model's `groupFinished` callback).
    public func groupReady(_ group: Int) {
        schedule.groupReady(group, start: start, complete: complete)
    }

    /// Advances the reductions in flight (MPI_Test on each).
    public func progress() { schedule.progress(complete: complete) }

    // MARK: - After backward

    /// Starts what has not started, waits for every bucket, leaves this rank's shard of the
    /// mean in `shardGradients`, and agrees with the other ranks on `nonFinite`. Resets for the next step.
    public func finish() -> GradientReducer.Reduction {
        schedule.finish(communicator: communicator, start: start, complete: complete)
    }

    // MARK: - Buckets

    /// Elements of bucket `range` each rank receives, by rank.
    private func counts(_ range: Range<Int>) -> [Int] {
        shards.map { $0.clamped(to: range).count }
    }

    /// Where this rank's part of bucket `range` lands in `shardGradients`.
    private func shardSlice(_ range: Range<Int>) -> Range<Int> {
        let mine = shard.clamped(to: range)
        return (mine.lowerBound - shard.lowerBound)..<(mine.upperBound - shard.lowerBound)
    }

    private func start(_ index: Int) -> BucketSchedule.Started {
        let range = buckets[index].range
        let slice = UnsafeMutableBufferPointer(rebasing: gradients[range])
        let target = UnsafeMutableBufferPointer(rebasing: shardGradients[shardSlice(range)])
        if communicator.size == 1 {
            let bad = dpo_f32_scale_checked(slice.baseAddress, slice.count, 1) != 0
            if let base = slice.baseAddress { target.baseAddress?.update(from: base, count: slice.count) }
            return .reduced(nonFinite: bad)
        }
        let counts = counts(range)
        switch wireType {
        case .fp32:
            // Pre-divided as GradientReducer does (a sum of N terms of at most max|g|/N cannot overflow).
            let bad = dpo_f32_scale_checked(slice.baseAddress, slice.count, 1 / Float(communicator.size))
            return .inFlight(communicator.startReduceScatterSum(UnsafeBufferPointer(slice), into: target, counts: counts), nonFinite: bad != 0)
        case .fp16:
            let wireSlice = UnsafeMutableBufferPointer(rebasing: wire[range])
            dpo_f32_to_f16_scaled(slice.baseAddress, wireSlice.baseAddress, slice.count, 1 / Float(communicator.size))
            let wireTarget = UnsafeMutableBufferPointer(rebasing: wireShard[shardSlice(range)])
            return .inFlight(
                communicator.startReduceScatterSumHalf(UnsafeBufferPointer(wireSlice), into: wireTarget, counts: counts), nonFinite: false)
        }
    }

    /// The bucket's shard of the sum has arrived (fp16: widen it into the fp32 shard, checking
    /// it). Returns whether it holds an inf or NaN.
    private func complete(_ index: Int) -> Bool {
        guard wireType == .fp16, communicator.size > 1 else { return false }
        let part = shardSlice(buckets[index].range)
        guard !part.isEmpty else { return false }
        let target = UnsafeMutableBufferPointer(rebasing: shardGradients[part])
        return dpo_f16_to_f32_checked(UnsafeMutableBufferPointer(rebasing: wireShard[part]).baseAddress, target.baseAddress, target.count) != 0
    }
}

/// How ZeRO-1 splits the flat parameter vector over ranks.
public enum ParameterShards {
    /// `ranks` contiguous ranges tiling 0..<total, rank 0 first, the first total % ranks one
    /// element longer (sizes differ by at most one).
    public static func ranges(total: Int, ranks: Int) -> [Range<Int>] {
        precondition(ranks >= 1 && total >= 0, "shards of \(total) elements over \(ranks) ranks")
        let base = total / ranks, extra = total % ranks
        var lower = 0
        return (0..<ranks).map { r in
            let count = base + (r < extra ? 1 : 0)
            defer { lower += count }
            return lower..<(lower + count)
        }
    }
}
