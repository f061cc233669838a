import CMPIShim
import Foundation

/// ZeRO stage 2's gradients (`--zero 2`): partitioned over ranks like the optimizer state.
///
/// Backward writes into `gradients`, a `GradientWindow` [P] (the layout offsets as ever). The
/// buckets are `GradientReduceScatter`'s (same plan, started from `groupFinished` so they overlap
/// backward, same pre-division by the world size, fp32 or fp16 on the wire). What differs:
/// - each bucket's fp32 pages are released once sent (fp16: right after rounding into its
///   staging slot; fp32: when its reduce-scatter has arrived), so a rank holds fp32 gradients
///   only for the buckets written and not yet sent, never the whole [P];
/// - this rank's shard of the mean arrives in `shardGradients`, a buffer of its own
///   [P / N]: the first micro-batch of a step writes it, later ones add to it;
/// - every micro-batch is reduced (call `finish()` after each backward): the accumulation
///   happens in the shard, not in a whole-vector buffer.
///
/// Bytes per rank: 4 P / N (the shard) + staging slots (fp16: 2 x (bucket + shard part) x 2;
/// fp32: 2 x shard part x 4 for micro-batches after the first) + the window's pages in flight
/// (the bucket being filled, the buckets being sent).
///
/// Tied embeddings (`tiedHead`: the embedding's range): the LM head writes its gradient there at
/// the start of backward and the embedding scatter adds to it at the end, so that range is not
/// final until backward ends, and holding it would keep V x H x 4 bytes (113 MB for SmolLM2-135M,
/// 545 MB for Qwen2.5-0.5B) of window pages for the whole backward. Instead it is reduced twice:
/// once as the LM head writes it (the head's part; its pages released), and again with the
/// embedding's buckets (the scatter's part, into pages that read as zero: only the rows of the
/// batch's tokens are touched). Cost: V x H more elements on the wire per micro-batch (+21% of
/// the bytes for SmolLM2-135M), and the shard's embedding rows are the sum of two reduced means
/// instead of the mean of one sum (different rounding, see below). The head's part goes a bucket
/// at a time (its buckets run up the vocabulary): backward reports each vocabulary panel the
/// head has finished (`headRowsFinished`), and a head bucket starts, its pages released, as soon
/// as its rows are done, so the window never holds more of the head than a bucket and a panel.
/// Without those reports the head's buckets start when the head's group is ready.
///
/// An untied LM head (`untiedHead`: lm_head's range, in the last group) is written once, by the
/// head's backward, and goes the same way a bucket at a time as its panels finish, reduced once:
/// without that its whole V x H x 4 bytes (for Llama-3.1-8B's 128256 x 4096, 2.1 GB) would stay
/// in the window until the final norm's gradient is done.
///
/// Arithmetic: without a tied head, one micro-batch per step gives bit-identical shard
/// gradients to `GradientReduceScatter` (the same sums, whatever the buckets; the first write is a copy).
/// Several micro-batches are reduced one at a time and their means added in fp32, where ZeRO-1
/// adds the local gradients first and reduces once; a tied embedding's two parts likewise:
/// equal up to rounding (with fp16 on the wire each part's mean is rounded to binary16 on its own).
public final class PartitionedGradients: ShardGradientReduction {
    public let communicator: Communicator
    public let wireType: GradientReducer.WireType
    public var buckets: [GradientBucket] { schedule.buckets }
    public let shards: [Range<Int>]
    /// What backward writes into [P].
    public let window: GradientWindow
    public var gradients: UnsafeMutableBufferPointer<Float> { window.buffer }
    public var shardGradients: UnsafeMutableBufferPointer<Float> { shardStorage.buffer }
    /// The shard's storage [shard.count]: a mapping too, so its pages come on the first step's writes.
    private let shardStorage: GradientWindow
    private let groupRanges: [Range<Int>]
    /// fp16 staging slots (send part + this rank's receive part); nil with fp32 on the wire.
    private let wire: WireStaging?
    /// fp32 receive slots of micro-batches after the first (their mean is added, so it cannot
    /// land in `shardGradients` directly); nil with fp16 on the wire.
    private let received: StagingSlots<Float>?
    private let schedule: BucketSchedule
    /// False during a step's first micro-batch (its mean is written), true after it (added).
    private var accumulating = false
    /// The LM head's range and its buckets' indices (the first ones, ascending), and whether it
    /// is tied (the embedding pass adds to its range again); nil with LoRA or no head given.
    private let head: (range: Range<Int>, buckets: Range<Int>, tied: Bool)?
    /// Called as each bucket is about to go, its fp32 gradients all written (the window's pages
    /// then at their fullest): the bench's peak-memory probe; nil in training.
    public var bucketFilled: (() -> Void)?
    /// This micro-batch's head pass: elements of the tied head's range the head has finished
    /// (from its lower bound), and how many head buckets have been declared ready.
    private var headWritten = 0, headBucketsReady = 0

    /// Same parameters as `GradientReduceScatter.init` (P = `count`); needs 2 ranks or more (on
    /// one rank stage 2 is stage 1: there is nothing to partition). `tiedHead`: the elements a
    /// tied LM head writes at the start of backward and the embedding again at the end (the
    /// embedding's range, group 0; nil when untied or with LoRA). `untiedHead`: an untied
    /// head's own range (lm_head, inside the last group; nil when tied or with LoRA).
    public init(communicator: Communicator, count: Int, groupRanges: [Range<Int>], bucketMegabytes: Double = 25,
                wireType: GradientReducer.WireType = .fp32, tiedHead: Range<Int>? = nil, untiedHead: Range<Int>? = nil) throws {
        precondition(communicator.size > 1, "PartitionedGradients needs 2 or more ranks")
        self.communicator = communicator
        self.wireType = wireType
        var buckets = try GradientBucket.plan(
            gradientCount: count, groupRanges: groupRanges, bucketMegabytes: bucketMegabytes, wireBytes: wireType.bytes)
        precondition(tiedHead == nil || untiedHead == nil, "a head is tied or untied, not both")
        if let head = tiedHead, !head.isEmpty {
            let (headBuckets, split) = try Self.tiedPlan(buckets, head: head, headGroup: groupRanges.count - 1)
            self.head = (head, 0..<headBuckets.count, true)
            buckets = headBuckets + split
        } else if let head = untiedHead, !head.isEmpty {
            precondition(groupRanges.last.map { $0.lowerBound <= head.lowerBound && head.upperBound <= $0.upperBound } ?? false,
                         "the untied head \(head) must lie in the last group")
            let (headBuckets, rest) = try Self.untiedPlan(buckets, head: head, headGroup: groupRanges.count - 1)
            self.head = (head, 0..<headBuckets.count, false)
            buckets = headBuckets + rest
        } else {
            self.head = nil
        }
        shards = ParameterShards.ranges(total: count, ranks: communicator.size)
        let shard = shards[communicator.rank]
        window = GradientWindow(count: count)
        shardStorage = GradientWindow(count: shard.count, hugePages: true)
        self.groupRanges = groupRanges
        let receiveCount = buckets.map { shard.clamped(to: $0.range).count }.max() ?? 0
        switch wireType {
        case .fp16:
            wire = WireStaging(sendCount: buckets.map(\.range.count).max() ?? 0, receiveCount: receiveCount)
            received = nil
        case .fp32:
            wire = nil
            received = StagingSlots<Float>(sendCount: 0, receiveCount: receiveCount)
        }
        schedule = BucketSchedule(buckets: buckets, groupCount: groupRanges.count,
                                  maxInFlight: wire?.slotCount ?? received!.slotCount)
    }

    /// The tied head's own buckets (`head` cut into pieces no longer than the plan's largest
    /// bucket, ready with `headGroup` or as the head's rows finish, started first, in ascending
    /// order: the LM head's backward finishes its vocabulary panels from row 0 up), and the plan
    /// with any bucket that crosses `head`'s end split there (so each later bucket either adds to
    /// the head pass or not).
    static func tiedPlan(_ plan: [GradientBucket], head: Range<Int>, headGroup: Int) throws -> ([GradientBucket], [GradientBucket]) {
        let headBuckets = try headPlan(plan, head: head, headGroup: headGroup)
        var split: [GradientBucket] = []
        for bucket in plan {
            let r = bucket.range
            guard r.lowerBound < head.upperBound, head.upperBound < r.upperBound else { split.append(bucket); continue }
            // Backward order: the part above the head's end is final first.
            split.append(GradientBucket(range: head.upperBound..<r.upperBound, groups: bucket.groups.filter { $0 != 0 }))
            split.append(GradientBucket(range: r.lowerBound..<head.upperBound, groups: bucket.groups))
        }
        return (headBuckets, split)
    }

    /// The untied head's own buckets (as `tiedPlan`'s), and the plan with the head's range cut
    /// out of its buckets (the pieces below and above it keep their groups).
    static func untiedPlan(_ plan: [GradientBucket], head: Range<Int>, headGroup: Int) throws -> ([GradientBucket], [GradientBucket]) {
        let headBuckets = try headPlan(plan, head: head, headGroup: headGroup)
        var rest: [GradientBucket] = []
        for bucket in plan {
            let r = bucket.range
            // Backward order: the part above the head first.
            let aboveHead = max(r.lowerBound, head.upperBound), belowHead = min(r.upperBound, head.lowerBound)
            if aboveHead < r.upperBound { rest.append(GradientBucket(range: aboveHead..<r.upperBound, groups: bucket.groups)) }
            if r.lowerBound < belowHead { rest.append(GradientBucket(range: r.lowerBound..<belowHead, groups: bucket.groups)) }
        }
        return (headBuckets, rest)
    }

    /// `head` cut into pieces no longer than the plan's largest bucket, ready with `headGroup`
    /// or as the head's rows finish, in ascending order (the LM head's backward finishes its
    /// vocabulary panels from row 0 up).
    private static func headPlan(_ plan: [GradientBucket], head: Range<Int>, headGroup: Int) throws -> [GradientBucket] {
        let largest = plan.map(\.range.count).max() ?? 1
        return try GradientBucket.plan(groupRanges: [head], maxElements: largest)
            .reversed().map { GradientBucket(range: $0.range, groups: [headGroup]) }
    }

    /// Whether bucket `index` adds its mean to the shard (a later micro-batch, or the embedding
    /// pass over a tied head's range) rather than writing it.
    private func adds(_ index: Int) -> Bool {
        guard !accumulating, let head, head.tied else { return accumulating }
        return !head.buckets.contains(index) && head.range.contains(buckets[index].range.lowerBound)
    }

    deinit {
        schedule.waitForAll()  // before the buffers the collectives use are freed
    }

    /// Bytes of staging slots (fp16 send + receive, or fp32 receive).
    public var stagingBytes: Int { (wire?.bytes ?? 0) + (received?.bytes ?? 0) }

    public var shard: Range<Int> { shards[communicator.rank] }

    /// A new step: its first micro-batch's mean will overwrite `shardGradients`.
    public func beginStep() { accumulating = false }

    // MARK: - During backward (every micro-batch)

    /// Backward is about to start: the pages of what it writes first (the head's group, less an
    /// untied head; the head's first bucket) are faulted in by writes (`GradientWindow.prefault`).
    public func beginBackward() {
        let last = groupRanges[groupRanges.count - 1]
        if let head, !head.tied {
            window.prefault(last.lowerBound..<head.range.lowerBound)
            window.prefault(head.range.upperBound..<last.upperBound)
        } else {
            window.prefault(last)
        }
        guard let head else { return }
        headWritten = head.range.lowerBound
        headBucketsReady = 0
        prefaultNextHeadBucket()
    }

    /// Backward's report that the LM head's gradient `elements` (a range of `gradients`: the
    /// rows of a finished vocabulary panel) are written for this micro-batch's head pass;
    /// reports run up the head's range without gaps. Starts every head bucket now complete
    /// (fp16: its pages released at once) and faults in the next one's unwritten pages. Ignored
    /// without a head given to `init`.
    public func headRowsFinished(_ elements: Range<Int>) {
        guard let head, !elements.isEmpty, head.range.contains(elements.lowerBound) else { return }
        precondition(elements.lowerBound == headWritten && elements.upperBound <= head.range.upperBound,
                     "headRowsFinished(\(elements)): the head's rows must be reported in order from \(headWritten)")
        headWritten = elements.upperBound
        while headBucketsReady < head.buckets.count,
              buckets[head.buckets.lowerBound + headBucketsReady].range.upperBound <= headWritten {
            schedule.bucketReady(head.buckets.lowerBound + headBucketsReady, start: start, complete: complete)
            headBucketsReady += 1
            prefaultNextHeadBucket()
        }
    }

    /// Faults in the pages of the next head bucket not written yet (the written ones hold gradients).
    private func prefaultNextHeadBucket() {
        guard let head, headBucketsReady < head.buckets.count else { return }
        let next = buckets[head.buckets.lowerBound + headBucketsReady].range
        window.prefault(max(next.lowerBound, headWritten)..<next.upperBound)
    }

    /// The model's `groupFinished` callback: starts the buckets now complete, and faults in the
    /// next layer's pages by writes (not the embedding's, group 0: its scatter touches only the
    /// rows of the batch's tokens).
    public func groupReady(_ group: Int) {
        schedule.groupReady(group, start: start, complete: complete)
        if group >= 2 { window.prefault(groupRanges[group - 1]) }
        // fp32 sends the head pass from the window itself: it must arrive before the embedding
        // backward (after group 1, the first layer) writes those elements again.
        if group == 1, let head, head.tied, wireType == .fp32 { schedule.wait(for: head.buckets, complete: complete) }
    }

    public func progress() { schedule.progress(complete: complete) }

    /// After each micro-batch's backward: waits for its buckets (this micro-batch's shard of the
    /// mean is then in `shardGradients`, added to the earlier ones'), agrees on `nonFinite`
    /// (this micro-batch's) and leaves the window all zeros for the next backward.
    public func finish() -> GradientReducer.Reduction {
        let reduction = schedule.finish(communicator: communicator, start: start, complete: complete)
        window.releaseAll()  // the pages buckets share at their ends
        accumulating = true
        return reduction
    }

    // MARK: - Buckets

    private func counts(_ range: Range<Int>) -> [Int] { ParameterShards.counts(of: range, shards: shards) }

    /// Where this rank's part of bucket `range` lands in `shardGradients`.
    private func shardSlice(_ range: Range<Int>) -> Range<Int> { ParameterShards.slice(of: range, in: shard) }

    private func start(_ index: Int) -> BucketSchedule.Started {
        bucketFilled?()
        let range = buckets[index].range
        let slice = UnsafeMutableBufferPointer(rebasing: gradients[range])
        let part = shardSlice(range)
        let counts = counts(range)
        switch wireType {
        case .fp32:
            let bad = dpo_f32_scale_checked(slice.baseAddress, slice.count, 1 / Float(communicator.size))
            let target = adds(index)
                ? received!.acquire(index, count: 0, receive: part.count).receive
                : UnsafeMutableBufferPointer(rebasing: shardGradients[part])
            return .inFlight(communicator.startReduceScatterSum(UnsafeBufferPointer(slice), into: target, counts: counts), nonFinite: bad != 0)
        case .fp16:
            let (send, receive) = wire!.acquire(index, count: range.count, receive: part.count)
            dpo_f32_to_f16_scaled(slice.baseAddress, send.baseAddress, slice.count, 1 / Float(communicator.size))
            window.release(range)  // rounded into the slot: the fp32 pages are done
            return .inFlight(communicator.startReduceScatterSumHalf(UnsafeBufferPointer(send), into: receive, counts: counts), nonFinite: false)
        }
    }

    /// Bucket `index`'s shard of the sum has arrived: into (first micro-batch) or onto
    /// `shardGradients`, checked. Returns whether it holds an inf or NaN.
    private func complete(_ index: Int) -> Bool {
        let range = buckets[index].range, part = shardSlice(range)
        let target = UnsafeMutableBufferPointer(rebasing: shardGradients[part])
        switch wireType {
        case .fp32:
            window.release(range)  // the send buffer is free now
            guard adds(index) else { return false }  // received in place; checked before sending
            defer { received!.release(index) }
            let sum = received!.slot(of: index, count: 0, receive: part.count).receive
            return !part.isEmpty && dpo_f32_add_checked(sum.baseAddress, target.baseAddress, part.count) != 0
        case .fp16:
            defer { wire!.release(index) }
            guard !part.isEmpty else { return false }
            let sum = wire!.slot(of: index, count: range.count, receive: part.count).receive
            return adds(index)
                ? dpo_f16_add_to_f32_checked(sum.baseAddress, target.baseAddress, part.count) != 0
                : dpo_f16_to_f32_checked(sum.baseAddress, target.baseAddress, part.count) != 0
        }
    }
}
