import Foundation

/// The bucket bookkeeping `GradientReducer` and `GradientReduceScatter` share: which groups'
/// gradients are final, which buckets are waiting, in flight or reduced, the local inf/NaN
/// flag and the counts one `finish` reports. The reducer says how a bucket starts and how a
/// bucket whose collective arrived completes; this type decides when.
final class BucketSchedule {
    /// What starting a bucket did: reduced at once (one rank), or a collective in flight;
    /// with whether its pass found an inf or NaN.
    enum Started {
        case reduced(nonFinite: Bool)
        case inFlight(AllReduceRequest, nonFinite: Bool)
    }

    private enum State { case waiting, inFlight(AllReduceRequest), reduced }

    let buckets: [GradientBucket]
    private var states: [State]
    private var groupFinal: [Bool]
    /// Buckets declared complete before their groups are (`bucketReady`: a tied LM head's rows).
    private var readyEarly: [Bool]
    private var nextBucket = 0
    private var localNonFinite = false
    private var startedEarly = 0
    /// Collectives in flight at most (the fp16 staging slots, `WireStaging`); nil = no limit.
    let maxInFlight: Int?

    init(buckets: [GradientBucket], groupCount: Int, maxInFlight: Int? = nil) {
        precondition(maxInFlight.map { $0 >= 1 } ?? true, "maxInFlight must be at least 1")
        self.buckets = buckets
        self.maxInFlight = maxInFlight
        states = Array(repeating: .waiting, count: buckets.count)
        groupFinal = Array(repeating: false, count: groupCount)
        readyEarly = Array(repeating: false, count: buckets.count)
    }

    deinit { waitForAll() }

    /// Waits for the collectives still in flight (a reducer dropped mid-step).
    func waitForAll() {
        for index in states.indices { if case let .inFlight(request) = states[index] { request.wait() } }
    }

    /// Group `group`'s gradients are final: start every bucket that is now complete, then
    /// advance the ones in flight. `complete` returns whether the arrived bucket holds an inf or NaN.
    func groupReady(_ group: Int, start: (Int) -> Started, complete: (Int) -> Bool) {
        precondition(group >= 0 && group < groupFinal.count, "groupReady(\(group)) outside 0..<\(groupFinal.count)")
        groupFinal[group] = true
        startCompleted(start, complete)
    }

    /// Bucket `index`'s elements are final although its groups are not all (ZeRO-2: the rows of a
    /// tied LM head whose vocabulary panels are done): it starts once the buckets before it have.
    func bucketReady(_ index: Int, start: (Int) -> Started, complete: (Int) -> Bool) {
        precondition(buckets.indices.contains(index), "bucketReady(\(index)) outside 0..<\(buckets.count)")
        readyEarly[index] = true
        startCompleted(start, complete)
    }

    /// Starts, in plan order, every bucket now complete, then advances the ones in flight.
    private func startCompleted(_ start: (Int) -> Started, _ complete: (Int) -> Bool) {
        while nextBucket < buckets.count, readyEarly[nextBucket] || buckets[nextBucket].groups.allSatisfy({ groupFinal[$0] }) {
            begin(nextBucket, start, complete)
            startedEarly += 1
        }
        progress(complete: complete)
    }

    /// Advances the collectives in flight (MPI_Test on each); cheap, callable any time.
    func progress(complete: (Int) -> Bool) {
        for index in states.indices {
            if case let .inFlight(request) = states[index], request.test() { end(index, complete) }
        }
    }

    /// Waits for the buckets of `indices` that are in flight (ZeRO-2: before backward writes their elements again).
    func wait(for indices: Range<Int>, complete: (Int) -> Bool) {
        for index in indices {
            if case let .inFlight(request) = states[index] {
                request.wait()
                end(index, complete)
            }
        }
    }

    /// Starts what has not started, waits for every bucket, agrees with the other ranks on
    /// `nonFinite` and resets for the next step.
    func finish(communicator: Communicator, start: (Int) -> Started, complete: (Int) -> Bool) -> GradientReducer.Reduction {
        let clock = ContinuousClock.now
        var completedEarly = 0
        for index in states.indices { if case .reduced = states[index] { completedEarly += 1 } }
        while nextBucket < buckets.count { begin(nextBucket, start, complete) }
        for index in states.indices {
            if case let .inFlight(request) = states[index] {
                request.wait()
                end(index, complete)
            }
        }
        let nonFinite = communicator.size > 1 ? communicator.anyRank(localNonFinite) : localNonFinite
        let elapsed = ContinuousClock.now - clock
        let reduction = GradientReducer.Reduction(
            nonFinite: nonFinite, bucketsStartedEarly: startedEarly, bucketsCompletedEarly: completedEarly,
            finishSeconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18)
        for index in states.indices { states[index] = .waiting }
        for g in groupFinal.indices { groupFinal[g] = false }
        for b in readyEarly.indices { readyEarly[b] = false }
        nextBucket = 0
        localNonFinite = false
        startedEarly = 0
        return reduction
    }

    /// Starts bucket `index`, first waiting for the oldest collective in flight when `maxInFlight` are.
    private func begin(_ index: Int, _ start: (Int) -> Started, _ complete: (Int) -> Bool) {
        if let maxInFlight {
            let flying = states.indices.filter { if case .inFlight = states[$0] { return true } else { return false } }
            if flying.count >= maxInFlight, let oldest = flying.first, case let .inFlight(request) = states[oldest] {
                request.wait()
                end(oldest, complete)
            }
        }
        nextBucket = index + 1
        switch start(index) {
        case let .reduced(nonFinite):
            states[index] = .reduced
            localNonFinite = localNonFinite || nonFinite
        case let .inFlight(request, nonFinite):
            states[index] = .inFlight(request)
            localNonFinite = localNonFinite || nonFinite
        }
    }

    private func end(_ index: Int, _ complete: (Int) -> Bool) {
        states[index] = .reduced
        localNonFinite = complete(index) || localNonFinite
    }
}
