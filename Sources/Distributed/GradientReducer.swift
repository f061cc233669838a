import CMPIShim
import Foundation

/// Averages a flat fp32 gradient buffer across ranks, DDP-style: bucketed all-reduces
/// started while backward is still running.
///
/// Use, once per optimizer step (on the last micro-step when accumulating gradients):
///
///     model.backward(dTokenLogps: d, gradients: grads, groupFinished: reducer.groupReady)
///     let reduction = reducer.finish()      // grads now hold the mean over ranks
///     if reduction.nonFinite { skip the step on every rank }
///
/// On micro-steps that only accumulate, pass `groupFinished: nil` and do not call
/// `finish()`: nothing is communicated. Calling `finish()` without any `groupReady` is
/// valid and simply reduces everything then (no overlap).
///
/// `groupReady(g)` marks group g final and starts (MPI_Iallreduce) every bucket whose
/// groups are all final, in bucket order, so all ranks start the same collectives in the
/// same order. Open MPI advances non-blocking collectives only inside MPI calls, so every
/// `groupReady` also tests the buckets in flight (`progress()` does that alone).
///
/// Each bucket is multiplied by 1/worldSize before its sum (as DDP does), checking for
/// inf/NaN in the same pass. fp16 on the wire: the pre-divided bucket is rounded to
/// binary16 (halving the bytes; pre-dividing keeps the sum in range) and widened back to
/// fp32 afterwards, checking the sum. After the last bucket the ranks agree on the flag
/// with one tiny all-reduce, so `nonFinite` is the same everywhere and the loss scaler
/// skips the step together.
///
/// The gradient buffer must outlive the reducer and must not be touched between a
/// bucket's start and `finish()`. Only the thread that created the communicator may call it.
public final class GradientReducer {
    /// Element type of the gradients on the wire.
    public enum WireType: String, CaseIterable, Codable, Sendable {
        case fp32, fp16
        public var bytes: Int { self == .fp32 ? 4 : 2 }
    }

    /// What one `finish()` found.
    public struct Reduction: Equatable, Sendable {
        /// Some rank had an inf or NaN in its gradients (or the sum overflowed); same on every rank.
        public var nonFinite: Bool
        /// Buckets started by `groupReady`, i.e. before `finish()` was called.
        public var bucketsStartedEarly: Int
        /// Buckets whose all-reduce had already completed when `finish()` was called.
        public var bucketsCompletedEarly: Int
        /// Seconds `finish()` spent waiting and averaging.
        public var finishSeconds: Double
    }

    public let communicator: Communicator
    public let wireType: WireType
    public var buckets: [GradientBucket] { schedule.buckets }
    private let gradients: UnsafeMutableBufferPointer<Float>
    /// fp16 staging slots of the buckets in flight (nil for fp32 or one rank).
    private let wire: WireStaging?

    /// Which buckets are waiting, in flight or reduced (shared with `GradientReduceScatter`).
    private let schedule: BucketSchedule

    /// - Parameters:
    ///   - gradients: the flat fp32 gradient buffer (layout order); kept, not copied.
    ///   - groupRanges: each group's range, in layout order, together covering the whole
    ///     buffer (`ParameterLayout.groupRanges`).
    ///   - bucketMegabytes: largest bucket in MiB on the wire (`--bucket-mb`, default 25).
    ///   - wireType: `--allreduce-dtype`.
    public init(communicator: Communicator, gradients: UnsafeMutableBufferPointer<Float>, groupRanges: [Range<Int>],
                bucketMegabytes: Double = 25, wireType: WireType = .fp32) throws {
        self.communicator = communicator
        self.wireType = wireType
        self.gradients = gradients
        let buckets = try GradientBucket.plan(
            gradientCount: gradients.count, groupRanges: groupRanges, bucketMegabytes: bucketMegabytes, wireBytes: wireType.bytes)
        let needsWire = wireType == .fp16 && communicator.size > 1
        wire = needsWire ? WireStaging(sendCount: buckets.map(\.range.count).max() ?? 0) : nil
        self.schedule = BucketSchedule(buckets: buckets, groupCount: groupRanges.count, maxInFlight: wire?.slotCount)
    }

    deinit {
        schedule.waitForAll()  // before the staging buffers the collectives use are freed
    }

    /// Bytes of fp16 staging (a few buckets; 0 for fp32 or one rank).
    public var stagingBytes: Int { wire?.bytes ?? 0 }

    // MARK: - During backward

    /// Group `group`'s gradients are final: start every bucket that is now complete, and
    /// advance the ones in flight. Pass it as the model's `groupFinished` callback.
    public func groupReady(_ group: Int) {
        schedule.groupReady(group, start: start, complete: complete)
    }

    /// Advances the all-reduces in flight (MPI_Test on each); cheap, callable any time.
    public func progress() { schedule.progress(complete: complete) }

    // MARK: - After backward

    /// Starts what has not started, waits for every bucket, leaves the mean over ranks in
    /// the gradient buffer, and agrees with the other ranks on `nonFinite`. Resets the
    /// reducer for the next step.
    public func finish() -> Reduction {
        schedule.finish(communicator: communicator, start: start, complete: complete)
    }

    // MARK: - Buckets

    /// Called as each bucket is about to go, its gradients all written: the bench's peak-memory
    /// probe (`DPOStep.memoryProbe`); nil in training.
    public var bucketFilled: (() -> Void)?

    private func start(_ index: Int) -> BucketSchedule.Started {
        bucketFilled?()
        let range = buckets[index].range
        let slice = UnsafeMutableBufferPointer(rebasing: gradients[range])
        if communicator.size == 1 {
            return .reduced(nonFinite: dpo_f32_scale_checked(slice.baseAddress, slice.count, 1) != 0)
        }
        switch wireType {
        case .fp32:
            // Pre-divide, as DDP does: the pass runs during backward, and a sum of N terms
            // of at most max|g|/N each cannot overflow, so a finite input gives a finite mean.
            let bad = dpo_f32_scale_checked(slice.baseAddress, slice.count, 1 / Float(communicator.size))
            return .inFlight(communicator.startAllReduceSum(slice), nonFinite: bad != 0)
        case .fp16:
            let wireSlice = wire!.acquire(index, count: range.count).send
            dpo_f32_to_f16_scaled(slice.baseAddress, wireSlice.baseAddress, slice.count, 1 / Float(communicator.size))
            return .inFlight(communicator.startAllReduceSumHalf(wireSlice), nonFinite: false)
        }
    }

    /// The bucket's sum has arrived: turn it into the mean in the fp32 gradients. Returns
    /// whether the sum holds an inf or NaN.
    private func complete(_ index: Int) -> Bool {
        guard let wire else { return false }  // fp32 was pre-divided in place
        let range = buckets[index].range
        let slice = UnsafeMutableBufferPointer(rebasing: gradients[range])
        defer { wire.release(index) }
        return dpo_f16_to_f32_checked(wire.slot(of: index, count: range.count).send.baseAddress, slice.baseAddress, slice.count) != 0
    }
}
