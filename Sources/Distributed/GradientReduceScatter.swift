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
    public let buckets: [GradientBucket]
    /// Each rank's shard of the flat vector, by rank.
    public let shards: [Range<Int>]
    /// This rank's shard of the mean gradient [shards[rank].count], valid after `finish()`.
    public let shardGradients: UnsafeMutableBufferPointer<Float>
    private let gradients: UnsafeMutableBufferPointer<Float>
    private let groupCount: Int
    /// fp16 send buffer, same indexing as `gradients`, and fp16 receive buffer, same indexing as
    /// `shardGradients` (both empty for fp32 or one rank).
    private let wire: UnsafeMutableBufferPointer<UInt16>
    private let wireShard: UnsafeMutableBufferPointer<UInt16>

    private enum State { case waiting, inFlight(AllReduceRequest), reduced }
    private var states: [State]
    private var groupFinal: [Bool]
    private var nextBucket = 0
    private var localNonFinite = false
    private var startedEarly = 0

    /// Same parameters as `GradientReducer.init`; the shards come from the communicator's size.
    public init(communicator: Communicator, gradients: UnsafeMutableBufferPointer<Float>, groupRanges: [Range<Int>],
                bucketMegabytes: Double = 25, wireType: GradientReducer.WireType = .fp32) throws {
        self.communicator = communicator
        self.wireType = wireType
        self.gradients = gradients
        self.groupCount = groupRanges.count
        self.buckets = try GradientBucket.plan(
            gradientCount: gradients.count, groupRanges: groupRanges, bucketMegabytes: bucketMegabytes, wireBytes: wireType.bytes)
        self.shards = ParameterShards.ranges(total: gradients.count, ranks: communicator.size)
        let shardCount = shards[communicator.rank].count
        shardGradients = .allocate(capacity: shardCount)
        shardGradients.initialize(repeating: 0)
        let needsWire = wireType == .fp16 && communicator.size > 1
        wire = .allocate(capacity: needsWire ? gradients.count : 0)
        wireShard = .allocate(capacity: needsWire ? shardCount : 0)
        states = Array(repeating: .waiting, count: buckets.count)
        groupFinal = Array(repeating: false, count: groupRanges.count)
    }

    deinit {
        for index in states.indices { if case let .inFlight(request) = states[index] { request.wait() } }
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
        precondition(group >= 0 && group < groupCount, "groupReady(\(group)) outside 0..<\(groupCount)")
        groupFinal[group] = true
        while nextBucket < buckets.count, buckets[nextBucket].groups.allSatisfy({ groupFinal[$0] }) {
            start(nextBucket)
            startedEarly += 1
        }
        progress()
    }

    /// Advances the reductions in flight (MPI_Test on each).
    public func progress() {
        for index in states.indices {
            if case let .inFlight(request) = states[index], request.test() { complete(index) }
        }
    }

    // MARK: - After backward

    /// Starts what has not started, waits for every bucket, leaves this rank's shard of the
    /// mean in `shardGradients`, and agrees with the other ranks on `nonFinite`. Resets for the next step.
    public func finish() -> GradientReducer.Reduction {
        let clock = ContinuousClock.now
        var completedEarly = 0
        for index in states.indices { if case .reduced = states[index] { completedEarly += 1 } }
        while nextBucket < buckets.count { start(nextBucket) }
        for index in states.indices {
            if case let .inFlight(request) = states[index] {
                request.wait()
                complete(index)
            }
        }
        let nonFinite = communicator.size > 1 ? communicator.anyRank(localNonFinite) : localNonFinite
        let elapsed = ContinuousClock.now - clock
        let reduction = GradientReducer.Reduction(
            nonFinite: nonFinite, bucketsStartedEarly: startedEarly, bucketsCompletedEarly: completedEarly,
            finishSeconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18)
        for index in states.indices { states[index] = .waiting }
        for g in groupFinal.indices { groupFinal[g] = false }
        nextBucket = 0
        localNonFinite = false
        startedEarly = 0
        return reduction
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

    private func start(_ index: Int) {
        let range = buckets[index].range
        nextBucket = index + 1
        let slice = UnsafeMutableBufferPointer(rebasing: gradients[range])
        let target = UnsafeMutableBufferPointer(rebasing: shardGradients[shardSlice(range)])
        if communicator.size == 1 {
            states[index] = .reduced
            localNonFinite = localNonFinite || dpo_f32_scale_checked(slice.baseAddress, slice.count, 1) != 0
            if let base = slice.baseAddress { target.baseAddress?.update(from: base, count: slice.count) }
            return
        }
        let counts = counts(range)
        switch wireType {
        case .fp32:
            // Pre-divided as GradientReducer does (a sum of N terms of at most max|g|/N cannot overflow).
            let bad = dpo_f32_scale_checked(slice.baseAddress, slice.count, 1 / Float(communicator.size))
            localNonFinite = localNonFinite || bad != 0
            states[index] = .inFlight(communicator.startReduceScatterSum(UnsafeBufferPointer(slice), into: target, counts: counts))
        case .fp16:
            let wireSlice = UnsafeMutableBufferPointer(rebasing: wire[range])
            dpo_f32_to_f16_scaled(slice.baseAddress, wireSlice.baseAddress, slice.count, 1 / Float(communicator.size))
            let wireTarget = UnsafeMutableBufferPointer(rebasing: wireShard[shardSlice(range)])
            states[index] = .inFlight(
                communicator.startReduceScatterSumHalf(UnsafeBufferPointer(wireSlice), into: wireTarget, counts: counts))
        }
    }

    /// The bucket's shard of the sum has arrived (fp16: widen it into the fp32 shard, checking it).
    private func complete(_ index: Int) {
        states[index] = .reduced
        guard wireType == .fp16, communicator.size > 1 else { return }
        let part = shardSlice(buckets[index].range)
        guard !part.isEmpty else { return }
        let target = UnsafeMutableBufferPointer(rebasing: shardGradients[part])
        let bad = dpo_f16_to_f32_checked(UnsafeMutableBufferPointer(rebasing: wireShard[part]).baseAddress, target.baseAddress, target.count)
        localNonFinite = localNonFinite || bad != 0
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
