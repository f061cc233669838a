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
    public let buckets: [GradientBucket]
    private let gradients: UnsafeMutableBufferPointer<Float>
    private let groupCount: Int
    /// fp16 staging buffer, same indexing as `gradients` (empty for fp32 or one rank).
    private var wire: UnsafeMutableBufferPointer<UInt16>

    private enum State { case waiting, inFlight(AllReduceRequest), reduced }
    private var states: [State]
    private var groupFinal: [Bool]
    private var nextBucket = 0
    private var localNonFinite = false
    private var startedEarly = 0

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
        self.groupCount = groupRanges.count
        self.buckets = try GradientBucket.plan(
            gradientCount: gradients.count, groupRanges: groupRanges, bucketMegabytes: bucketMegabytes, wireBytes: wireType.bytes)
        let needsWire = wireType == .fp16 && communicator.size > 1
        self.wire = UnsafeMutableBufferPointer<UInt16>.allocate(capacity: needsWire ? gradients.count : 0)
        self.states = Array(repeating: .waiting, count: buckets.count)
        self.groupFinal = Array(repeating: false, count: groupRanges.count)
    }

    deinit {
        for index in states.indices { if case let .inFlight(request) = states[index] { request.wait() } }
        wire.deallocate()
    }

    // MARK: - During backward

    /// Group `group`'s gradients are final: start every bucket that is now complete, and
    /// advance the ones in flight. Pass it as the model's `groupFinished` callback.
    public func groupReady(_ group: Int) {
        precondition(group >= 0 && group < groupCount, "groupReady(\(group)) outside 0..<\(groupCount)")
        groupFinal[group] = true
        while nextBucket < buckets.count, buckets[nextBucket].groups.allSatisfy({ groupFinal[$0] }) {
            start(nextBucket)
            startedEarly += 1
        }
        progress()
    }

    /// Advances the all-reduces in flight (MPI_Test on each); cheap, callable any time.
    public func progress() {
        for index in states.indices {
            if case let .inFlight(request) = states[index], request.test() { complete(index) }
        }
    }

    // MARK: - After backward

    /// Starts what has not started, waits for every bucket, leaves the mean over ranks in
    /// the gradient buffer, and agrees with the other ranks on `nonFinite`. Resets the
    /// reducer for the next step.
    public func finish() -> Reduction {
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
        let reduction = Reduction(
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

    private func start(_ index: Int) {
        let range = buckets[index].range
        nextBucket = index + 1
        let slice = UnsafeMutableBufferPointer(rebasing: gradients[range])
        if communicator.size == 1 {
            states[index] = .reduced
            localNonFinite = localNonFinite || dpo_f32_scale_checked(slice.baseAddress, slice.count, 1) != 0
            return
        }
        switch wireType {
        case .fp32:
            // Pre-divide, as DDP does: the pass runs during backward, and a sum of N terms
            // of at most max|g|/N each cannot overflow, so a finite input gives a finite mean.
            let bad = dpo_f32_scale_checked(slice.baseAddress, slice.count, 1 / Float(communicator.size))
            localNonFinite = localNonFinite || bad != 0
            states[index] = .inFlight(communicator.startAllReduceSum(slice))
        case .fp16:
            let wireSlice = UnsafeMutableBufferPointer(rebasing: wire[range])
            dpo_f32_to_f16_scaled(slice.baseAddress, wireSlice.baseAddress, slice.count, 1 / Float(communicator.size))
            states[index] = .inFlight(communicator.startAllReduceSumHalf(wireSlice))
        }
    }

    /// The bucket's sum has arrived: turn it into the mean in the fp32 gradients.
    private func complete(_ index: Int) {
        states[index] = .reduced
        guard wireType == .fp16 else { return }  // fp32 was pre-divided in place
        let range = buckets[index].range
        let slice = UnsafeMutableBufferPointer(rebasing: gradients[range])
        let bad = dpo_f16_to_f32_checked(UnsafeMutableBufferPointer(rebasing: wire[range]).baseAddress, slice.baseAddress, slice.count)
        localNonFinite = localNonFinite || bad != 0
    }
}
