/// Collective communication between the ranks of a data-parallel job.
///
/// Two implementations: `MPICommunicator` (under `mpirun`/`srun`) and
/// `SingleProcessCommunicator` (world size 1, no MPI). `World.initialize()` picks one, so
/// the same binary runs at any world size. Every rank must make the same collective calls
/// in the same order, from the thread that created the communicator.
///
/// Collectives do not throw: an MPI failure in the middle of a collective leaves the job
/// unusable, so implementations report it through `abort(code:message:)`, which names the
/// rank and ends every process of the job.
public protocol Communicator: AnyObject {
    /// This process's rank, 0..<size.
    var rank: Int { get }
    /// Number of ranks in the job.
    var size: Int { get }
    /// This process's rank among the ranks on the same host, their number, and `leader`: the
    /// world rank of the host's first rank (node rank 0), which identifies the host within the job.
    var node: (rank: Int, size: Int, leader: Int) { get }

    func barrier()
    /// Copies `buffer` of rank `root` into `buffer` on every rank (same byte count everywhere).
    func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int)
    /// In-place element-wise sum over all ranks.
    func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>)
    /// In-place element-wise sum over all ranks, in double precision (metrics, counts).
    func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Double>)
    /// In-place element-wise maximum over all ranks (flags, steps).
    func allReduceMax(_ buffer: UnsafeMutableBufferPointer<Int64>)
    /// In-place element-wise sum of IEEE binary16 values (bit patterns), each addition
    /// rounded to half precision.
    func allReduceSumHalf(_ buffer: UnsafeMutableBufferPointer<UInt16>)
    /// Starts an in-place sum; `buffer` must stay valid and untouched until the request completes.
    func startAllReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) -> AllReduceRequest
    /// Starts an in-place binary16 sum (see `allReduceSumHalf`).
    func startAllReduceSumHalf(_ buffer: UnsafeMutableBufferPointer<UInt16>) -> AllReduceRequest
    /// Every rank sends the same number of bytes; `receive` (size x send.count bytes) gets
    /// rank r's bytes at offset r x send.count.
    func allGather(_ send: UnsafeRawBufferPointer, into receive: UnsafeMutableRawBufferPointer)
    /// Every rank sends any number of bytes; returns each rank's bytes, indexed by rank.
    func allGatherVariable(_ send: UnsafeRawBufferPointer) -> [[UInt8]]
    /// Sum over ranks of `send` (counts.reduce(0, +) elements), scattered (ZeRO-1): this rank
    /// receives the `counts[rank]` elements that follow those of lower ranks into `receive`.
    /// Every rank passes the same counts (zeros allowed); `send` and `receive` must not overlap.
    func reduceScatterSum(_ send: UnsafeBufferPointer<Float>, into receive: UnsafeMutableBufferPointer<Float>, counts: [Int])
    /// Starts `reduceScatterSum`; both buffers stay in use until the request completes.
    func startReduceScatterSum(_ send: UnsafeBufferPointer<Float>, into receive: UnsafeMutableBufferPointer<Float>,
                               counts: [Int]) -> AllReduceRequest
    /// Starts a binary16 `reduceScatterSum` (each addition rounded to half, as `allReduceSumHalf`).
    func startReduceScatterSumHalf(_ send: UnsafeBufferPointer<UInt16>, into receive: UnsafeMutableBufferPointer<UInt16>,
                                   counts: [Int]) -> AllReduceRequest
    /// In-place all-gather (ZeRO-1): rank r's `counts[r]` elements sit after those of lower
    /// ranks in `buffer` (counts.reduce(0, +) elements); afterwards every rank holds all of them.
    func allGatherInPlace(_ buffer: UnsafeMutableBufferPointer<Float>, counts: [Int])
    /// `allGatherInPlace` of binary16 bit patterns.
    func allGatherInPlaceHalf(_ buffer: UnsafeMutableBufferPointer<UInt16>, counts: [Int])
    /// Prints "rank R: message" to standard error and ends the whole job with `code`.
    func abort(code: Int32, message: String) -> Never
    /// Leaves MPI; call once at the end of a successful run (no collectives afterwards).
    func finalize()
}

/// A started non-blocking all-reduce.
public protocol AllReduceRequest: AnyObject {
    /// Blocks until the reduction has completed; the buffer then holds the result.
    func wait()
    /// True once the reduction has completed; drives MPI progress when it has not.
    func test() -> Bool
}

// MARK: - Conveniences

extension Communicator {
    /// Rank 0: the only rank that logs, prints progress and writes files.
    public var isPrimary: Bool { rank == 0 }

    /// True on every rank when `flag` is true on at least one rank.
    public func anyRank(_ flag: Bool) -> Bool {
        var value: Int64 = flag ? 1 : 0
        withUnsafeMutablePointer(to: &value) { allReduceMax(UnsafeMutableBufferPointer(start: $0, count: 1)) }
        return value != 0
    }

    /// Sum over ranks of each value.
    public func sum(_ values: [Double]) -> [Double] {
        var result = values
        result.withUnsafeMutableBufferPointer { allReduceSum($0) }
        return result
    }

    /// Mean over ranks of each value (e.g. metrics before logging).
    public func mean(_ values: [Double]) -> [Double] {
        sum(values).map { $0 / Double(size) }
    }

    /// Largest value over ranks.
    public func max(_ value: Int64) -> Int64 {
        var result = value
        withUnsafeMutablePointer(to: &result) { allReduceMax(UnsafeMutableBufferPointer(start: $0, count: 1)) }
        return result
    }

    /// Each rank's array (any length), indexed by rank: for gathering evaluation or
    /// precomputed results.
    public func allGather<Element: BitwiseCopyable>(_ values: [Element]) -> [[Element]] {
        let parts = values.withUnsafeBytes { allGatherVariable($0) }
        return parts.map { bytes in
            let count = bytes.count / MemoryLayout<Element>.stride
            return [Element](unsafeUninitializedCapacity: count) { out, initialized in
                bytes.withUnsafeBytes { raw in
                    if count > 0 { UnsafeMutableRawPointer(out.baseAddress!).copyMemory(from: raw.baseAddress!, byteCount: count * MemoryLayout<Element>.stride) }
                }
                initialized = count
            }
        }
    }
}
