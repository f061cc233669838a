/// fp16 staging (`WireStaging`): the buffers of the buckets in flight (`--allreduce-dtype fp16`): a few
/// bucket-sized slots instead of one send buffer as long as the whole gradient vector
/// (2P bytes: 269 MB for a 135M model, 988 MB for 0.5B; its pages were all touched every step).
///
/// A bucket takes a slot when it starts and gives it back when its collective has arrived;
/// `BucketSchedule(maxInFlight: slotCount)` waits for the oldest bucket in flight before
/// starting one more, so a free slot always exists. Each slot has a send part (`sendCount`
/// elements: the largest bucket) and a receive part (`receiveCount`: the largest share of a
/// bucket one rank receives from a reduce-scatter; 0 for an in-place all-reduce).
/// Generic over the element so ZeRO-2 (`PartitionedGradients`) can hold fp32 receive slots the same way.
final class StagingSlots<Element> {
    /// Buckets in flight at most (slots). Two keep one bucket travelling while the next is
    /// converted; deeper queues only hold more memory (collectives progress inside MPI calls).
    static var defaultSlotCount: Int { 2 }

    let slotCount: Int
    let sendCount: Int
    let receiveCount: Int
    private let storage: UnsafeMutableBufferPointer<Element>
    /// The bucket holding each slot (nil = free).
    private var holders: [Int?]

    init(slotCount: Int = defaultSlotCount, sendCount: Int, receiveCount: Int = 0) {
        precondition(slotCount >= 1 && sendCount >= 0 && receiveCount >= 0, "staging of \(slotCount) slots of \(sendCount) + \(receiveCount)")
        self.slotCount = slotCount
        self.sendCount = sendCount
        self.receiveCount = receiveCount
        storage = .allocate(capacity: slotCount * (sendCount + receiveCount))
        holders = Array(repeating: nil, count: slotCount)
    }

    deinit { storage.deallocate() }

    /// Bytes held (what the memory estimate counts).
    var bytes: Int { storage.count * MemoryLayout<Element>.stride }

    /// A free slot for `bucket`: its send part `[count]` and receive part `[receive]`.
    func acquire(_ bucket: Int, count: Int, receive: Int = 0) -> (send: UnsafeMutableBufferPointer<Element>, receive: UnsafeMutableBufferPointer<Element>) {
        precondition(count <= sendCount && receive <= receiveCount, "bucket \(bucket) of \(count) + \(receive) exceeds its staging slot")
        guard let slot = holders.firstIndex(where: { $0 == nil }) else {
            preconditionFailure("bucket \(bucket) started with all \(slotCount) staging slots in flight")
        }
        holders[slot] = bucket
        return parts(slot, count: count, receive: receive)
    }

    /// The slot `bucket` holds (its collective has arrived: read it, then `release`).
    func slot(of bucket: Int, count: Int, receive: Int = 0) -> (send: UnsafeMutableBufferPointer<Element>, receive: UnsafeMutableBufferPointer<Element>) {
        guard let slot = holders.firstIndex(where: { $0 == bucket }) else { preconditionFailure("bucket \(bucket) holds no staging slot") }
        return parts(slot, count: count, receive: receive)
    }

    func release(_ bucket: Int) {
        guard let slot = holders.firstIndex(where: { $0 == bucket }) else { preconditionFailure("bucket \(bucket) holds no staging slot") }
        holders[slot] = nil
    }

    private func parts(_ slot: Int, count: Int, receive: Int) -> (send: UnsafeMutableBufferPointer<Element>, receive: UnsafeMutableBufferPointer<Element>) {
        let base = storage.baseAddress! + slot * (sendCount + receiveCount)
        return (UnsafeMutableBufferPointer(start: base, count: count), UnsafeMutableBufferPointer(start: base + sendCount, count: receive))
    }
}

/// The fp16 slots of `--allreduce-dtype fp16`.
typealias WireStaging = StagingSlots<UInt16>
