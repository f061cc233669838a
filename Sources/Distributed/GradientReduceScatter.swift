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
/// not the mean, outside `shardGradients` (which, with fp16 on the wire, is its shard's range).
public final class GradientReduceScatter {
    public let communicator: Communicator
    public let wireType: GradientReducer.WireType
    public var buckets: [GradientBucket] { schedule.buckets }
    /// Each rank's shard of the flat vector, by rank.
    public let shards: [Range<Int>]
    /// This rank's shard of the mean gradient [shards[rank].count], valid after `finish()`: with
    /// fp16 on the wire, the shard's own elements of the gradient buffer; else a buffer of its own.
    public let shardGradients: UnsafeMutableBufferPointer<Float>
    private let ownsShardGradients: Bool
    private let gradients: UnsafeMutableBufferPointer<Float>
    /// fp16 staging slots of the buckets in flight, each a bucket's send part and this rank's
    /// receive part (nil for fp32 or one rank).
    private let wire: WireStaging?

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
        let shards = ParameterShards.ranges(total: gradients.count, ranks: communicator.size)
        self.shards = shards
        let shard = shards[communicator.rank]
        let needsWire = wireType == .fp16 && communicator.size > 1
        // fp16 on the wire: a bucket's fp32 gradients are consumed when it is rounded into its
        // staging slot, so its mean can come back into the same elements (this rank's shard of
        // the gradient buffer; P x 4 / ranks bytes saved), as it can alone (the shard is the whole).
        // fp32 sends from those very elements: the shard then needs its own buffer.
        ownsShardGradients = !needsWire && communicator.size > 1
        if !ownsShardGradients {
            shardGradients = UnsafeMutableBufferPointer(rebasing: gradients[shard])
        } else {
            shardGradients = .allocate(capacity: shard.count)
            shardGradients.initialize(repeating: 0)
        }
        wire = needsWire
            ? WireStaging(sendCount: buckets.map(\.range.count).max() ?? 0,
                          receiveCount: buckets.map { shard.clamped(to: $0.range).count }.max() ?? 0)
            : nil
        self.schedule = BucketSchedule(buckets: buckets, groupCount: groupRanges.count, maxInFlight: wire?.slotCount)
    }

    deinit {
        schedule.waitForAll()  // before the staging buffers the collectives use are freed
        if ownsShardGradients { shardGradients.deallocate() }
    }

    /// Bytes of fp16 staging (a few buckets; 0 for fp32 or one rank).
    public var stagingBytes: Int { wire?.bytes ?? 0 }

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

    private func counts(_ range: Range<Int>) -> [Int] { ParameterShards.counts(of: range, shards: shards) }

    /// Where this rank's part of bucket `range` lands in `shardGradients`.
    private func shardSlice(_ range: Range<Int>) -> Range<Int> { ParameterShards.slice(of: range, in: shard) }

    /// Called as each bucket is about to go, its gradients all written: the bench's peak-memory
    /// probe (`DPOStep.memoryProbe`); nil in training.
    public var bucketFilled: (() -> Void)?

    private func start(_ index: Int) -> BucketSchedule.Started {
        bucketFilled?()
        let range = buckets[index].range
        let slice = UnsafeMutableBufferPointer(rebasing: gradients[range])
        let target = UnsafeMutableBufferPointer(rebasing: shardGradients[shardSlice(range)])
        if communicator.size == 1 {
            let bad = dpo_f32_scale_checked(slice.baseAddress, slice.count, 1) != 0
            if let base = slice.baseAddress, target.baseAddress != base { target.baseAddress?.update(from: base, count: slice.count) }
            return .reduced(nonFinite: bad)
        }
        let counts = counts(range)
        switch wireType {
        case .fp32:
            // Pre-divided as GradientReducer does (a sum of N terms of at most max|g|/N cannot overflow).
            let bad = dpo_f32_scale_checked(slice.baseAddress, slice.count, 1 / Float(communicator.size))
            return .inFlight(communicator.startReduceScatterSum(UnsafeBufferPointer(slice), into: target, counts: counts), nonFinite: bad != 0)
        case .fp16:
            let (wireSlice, wireTarget) = wire!.acquire(index, count: range.count, receive: target.count)
            dpo_f32_to_f16_scaled(slice.baseAddress, wireSlice.baseAddress, slice.count, 1 / Float(communicator.size))
            return .inFlight(
                communicator.startReduceScatterSumHalf(UnsafeBufferPointer(wireSlice), into: wireTarget, counts: counts), nonFinite: false)
        }
    }

    /// The bucket's shard of the sum has arrived (fp16: widen it into the fp32 shard, checking
    /// it). Returns whether it holds an inf or NaN.
    private func complete(_ index: Int) -> Bool {
        guard let wire else { return false }
        defer { wire.release(index) }
        let range = buckets[index].range, part = shardSlice(range)
        guard !part.isEmpty else { return false }
        let target = UnsafeMutableBufferPointer(rebasing: shardGradients[part])
        let received = wire.slot(of: index, count: range.count, receive: part.count).receive
        return dpo_f16_to_f32_checked(received.baseAddress, target.baseAddress, target.count) != 0
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

    /// Elements of bucket `range` each rank receives, by rank (the reduce-scatter's counts).
    public static func counts(of range: Range<Int>, shards: [Range<Int>]) -> [Int] {
        shards.map { $0.clamped(to: range).count }
    }

    /// Where the part of bucket `range` inside `shard` lands in that shard's own buffer
    /// (indices relative to `shard.lowerBound`).
    public static func slice(of range: Range<Int>, in shard: Range<Int>) -> Range<Int> {
        let mine = shard.clamped(to: range)
        return (mine.lowerBound - shard.lowerBound)..<(mine.upperBound - shard.lowerBound)
    }
}
