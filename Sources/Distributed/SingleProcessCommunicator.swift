import Foundation

/// A world of one rank: every collective is the identity (a sum over one rank).
public final class SingleProcessCommunicator: Communicator {
    public init() {}

    public var rank: Int { 0 }
    public var size: Int { 1 }
    public var node: (rank: Int, size: Int, leader: Int) { (0, 1, 0) }

    public func barrier() {}
    public func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) {
        precondition(root == 0, "broadcast root \(root) outside a world of 1 rank")
    }
    public func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) {}
    public func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) {}
    public func allReduceMax(_ buffer: UnsafeMutableBufferPointer<Int64>) {}
    public func allReduceSumHalf(_ buffer: UnsafeMutableBufferPointer<UInt16>) {}
    public func startAllReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) -> AllReduceRequest {
        CompletedRequest()
    }
    public func startAllReduceSumHalf(_ buffer: UnsafeMutableBufferPointer<UInt16>) -> AllReduceRequest {
        CompletedRequest()
    }
    public func allGather(_ send: UnsafeRawBufferPointer, into receive: UnsafeMutableRawBufferPointer) {
        precondition(receive.count >= send.count, "allGather: receive holds \(receive.count) bytes, needs \(send.count)")
        if send.count > 0 { receive.baseAddress!.copyMemory(from: send.baseAddress!, byteCount: send.count) }
    }
    public func allGatherVariable(_ send: UnsafeRawBufferPointer) -> [[UInt8]] {
        [Array(send)]
    }
    public func abort(code: Int32, message: String) -> Never {
        FileHandle.standardError.write(Data("rank 0: \(message)\n".utf8))
        exit(code)
    }
    public func finalize() {}
}

/// A request that completed when it was made (a world of one rank).
final class CompletedRequest: AllReduceRequest {
    func wait() {}
    func test() -> Bool { true }
}

// MARK: - Sharded collectives (one rank owns everything)

extension SingleProcessCommunicator {
    public func reduceScatterSum(_ send: UnsafeBufferPointer<Float>, into receive: UnsafeMutableBufferPointer<Float>, counts: [Int]) {
        precondition(counts == [send.count] && receive.count >= send.count, "reduceScatterSum: counts \(counts) for \(send.count) elements")
        if let base = send.baseAddress, send.count > 0 { receive.baseAddress!.update(from: base, count: send.count) }
    }
    public func startReduceScatterSum(_ send: UnsafeBufferPointer<Float>, into receive: UnsafeMutableBufferPointer<Float>,
                                      counts: [Int]) -> AllReduceRequest {
        reduceScatterSum(send, into: receive, counts: counts)
        return CompletedRequest()
    }
    public func startReduceScatterSumHalf(_ send: UnsafeBufferPointer<UInt16>, into receive: UnsafeMutableBufferPointer<UInt16>,
                                          counts: [Int]) -> AllReduceRequest {
        precondition(counts == [send.count] && receive.count >= send.count, "startReduceScatterSumHalf: counts \(counts) for \(send.count) elements")
        if let base = send.baseAddress, send.count > 0 { receive.baseAddress!.update(from: base, count: send.count) }
        return CompletedRequest()
    }
    public func allGatherInPlace(_ buffer: UnsafeMutableBufferPointer<Float>, counts: [Int]) {
        precondition(counts == [buffer.count], "allGatherInPlace: counts \(counts) for \(buffer.count) elements")
    }
    public func allGatherInPlaceHalf(_ buffer: UnsafeMutableBufferPointer<UInt16>, counts: [Int]) {
        precondition(counts == [buffer.count], "allGatherInPlaceHalf: counts \(counts) for \(buffer.count) elements")
    }
}
