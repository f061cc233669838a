/// The sharded collectives of ZeRO-1 (reduce-scatter, in-place all-gather) for a communicator
/// that has no native ones: built from the all-reduce and the byte all-gather, so any
/// `Communicator` (a test double, say) runs sharded training unchanged. `MPICommunicator`
/// and `SingleProcessCommunicator` implement them natively.
extension Communicator {
    /// Elements [lower, upper) of rank `rank`'s part of a buffer split by `counts`.
    public static func shardRange(_ counts: [Int], rank: Int) -> Range<Int> {
        let lower = counts.prefix(rank).reduce(0, +)
        return lower..<(lower + counts[rank])
    }

    public func reduceScatterSum(_ send: UnsafeBufferPointer<Float>, into receive: UnsafeMutableBufferPointer<Float>, counts: [Int]) {
        precondition(counts.count == size && send.count == counts.reduce(0, +) && receive.count >= counts[rank],
                     "reduceScatterSum: \(send.count) elements sent, counts \(counts), \(receive.count) received")
        var sum = Array(send)
        sum.withUnsafeMutableBufferPointer { allReduceSum($0) }
        let mine = Self.shardRange(counts, rank: rank)
        for (i, j) in mine.enumerated() { receive[i] = sum[j] }
    }

    public func startReduceScatterSum(_ send: UnsafeBufferPointer<Float>, into receive: UnsafeMutableBufferPointer<Float>,
                                      counts: [Int]) -> AllReduceRequest {
        reduceScatterSum(send, into: receive, counts: counts)
        return CompletedRequest()
    }

    public func startReduceScatterSumHalf(_ send: UnsafeBufferPointer<UInt16>, into receive: UnsafeMutableBufferPointer<UInt16>,
                                          counts: [Int]) -> AllReduceRequest {
        precondition(counts.count == size && send.count == counts.reduce(0, +) && receive.count >= counts[rank],
                     "startReduceScatterSumHalf: \(send.count) elements sent, counts \(counts), \(receive.count) received")
        var sum = Array(send)
        sum.withUnsafeMutableBufferPointer { allReduceSumHalf($0) }
        let mine = Self.shardRange(counts, rank: rank)
        for (i, j) in mine.enumerated() { receive[i] = sum[j] }
        return CompletedRequest()
    }

    public func allGatherInPlace(_ buffer: UnsafeMutableBufferPointer<Float>, counts: [Int]) {
        gatherInPlace(UnsafeMutableRawBufferPointer(buffer), byteCounts: counts.map { $0 * 4 })
    }

    public func allGatherInPlaceHalf(_ buffer: UnsafeMutableBufferPointer<UInt16>, counts: [Int]) {
        gatherInPlace(UnsafeMutableRawBufferPointer(buffer), byteCounts: counts.map { $0 * 2 })
    }

    private func gatherInPlace(_ buffer: UnsafeMutableRawBufferPointer, byteCounts: [Int]) {
        precondition(byteCounts.count == size && buffer.count == byteCounts.reduce(0, +),
                     "allGatherInPlace: \(buffer.count) bytes, counts \(byteCounts)")
        let mine = Self.shardRange(byteCounts, rank: rank)
        let parts = allGatherVariable(UnsafeRawBufferPointer(rebasing: buffer[mine]))
        for (r, part) in parts.enumerated() where r != rank {
            let range = Self.shardRange(byteCounts, rank: r)
            precondition(part.count == range.count, "allGatherInPlace: rank \(r) sent \(part.count) bytes, expected \(range.count)")
            part.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: buffer[range]).copyMemory(from: $0) }
        }
    }
}
