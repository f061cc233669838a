import CMPIShim
import Foundation

/// The world of an MPI job (`MPI_COMM_WORLD`), through the CMPIShim C target.
///
/// Initialised with MPI_THREAD_FUNNELED: only the thread that created it may call it.
/// MPI errors come back as codes (MPI_ERRORS_RETURN) and end the job through `abort`,
/// with the rank, the call and MPI's own message.
public final class MPICommunicator: Communicator {
    public let rank: Int
    public let size: Int
    public let node: (rank: Int, size: Int, leader: Int)
    /// Host name as MPI reports it.
    public let hostName: String
    private var finalized = false

    /// Joins the MPI world (MPI_Init_thread). Throws when MPI cannot start.
    public init() throws {
        var provided: Int32 = 0
        let initCode = dpo_mpi_init(&provided)
        guard initCode == 0 else {
            throw DistributedError.mpi(call: "MPI_Init_thread", message: MPICommunicator.describe(initCode))
        }
        var rank: Int32 = 0, size: Int32 = 1, nodeRank: Int32 = 0, nodeSize: Int32 = 1, leader: Int32 = 0
        for (call, code) in [("MPI_Comm_rank", dpo_mpi_rank(&rank)), ("MPI_Comm_size", dpo_mpi_size(&size)),
                             ("MPI_Comm_split_type", dpo_mpi_node_rank_size(&nodeRank, &nodeSize, &leader))] where code != 0 {
            throw DistributedError.mpi(call: call, message: MPICommunicator.describe(code))
        }
        var name = [CChar](repeating: 0, count: 256)
        _ = dpo_mpi_processor_name(&name, Int32(name.count))
        self.rank = Int(rank)
        self.size = Int(size)
        self.node = (Int(nodeRank), Int(nodeSize), Int(leader))
        self.hostName = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func describe(_ code: Int32) -> String {
        var text = [CChar](repeating: 0, count: 512)
        dpo_mpi_error_string(code, &text, Int32(text.count))
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Ends the job when an MPI call failed.
    func check(_ code: Int32, _ call: String) {
        if code != 0 { abort(code: 70, message: "\(call) failed: \(MPICommunicator.describe(code))") }
    }

    /// Runs a collective that may wait for other ranks under the watch of `CollectiveWatchdog`,
    /// then ends the job if it failed.
    func watched(_ call: String, _ body: () -> Int32) {
        CollectiveWatchdog.shared.enter(call)
        let code = body()
        CollectiveWatchdog.shared.leave()
        check(code, call)
    }

    // MARK: - Collectives

    public func barrier() { watched("MPI_Barrier") { dpo_mpi_barrier() } }

    public func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) {
        precondition(root >= 0 && root < size, "broadcast root \(root) outside 0..<\(size)")
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        watched("MPI_Bcast") { dpo_mpi_broadcast(base, buffer.count, Int32(root)) }
    }

    public func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        watched("MPI_Allreduce(float)") { dpo_mpi_allreduce(base, buffer.count, DPO_MPI_F32) }
    }

    public func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        watched("MPI_Allreduce(double)") { dpo_mpi_allreduce(base, buffer.count, DPO_MPI_F64) }
    }

    public func allReduceMax(_ buffer: UnsafeMutableBufferPointer<Int64>) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        watched("MPI_Allreduce(int64 max)") { dpo_mpi_allreduce(base, buffer.count, DPO_MPI_I64_MAX) }
    }

    public func allReduceSumHalf(_ buffer: UnsafeMutableBufferPointer<UInt16>) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        watched("MPI_Allreduce(half)") { dpo_mpi_allreduce(base, buffer.count, DPO_MPI_F16) }
    }

    public func startAllReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) -> AllReduceRequest {
        start(UnsafeMutableRawPointer(buffer.baseAddress), count: buffer.count, DPO_MPI_F32, "MPI_Iallreduce(float)")
    }

    public func startAllReduceSumHalf(_ buffer: UnsafeMutableBufferPointer<UInt16>) -> AllReduceRequest {
        start(UnsafeMutableRawPointer(buffer.baseAddress), count: buffer.count, DPO_MPI_F16, "MPI_Iallreduce(half)")
    }

    private func start(_ base: UnsafeMutableRawPointer?, count: Int, _ type: dpo_mpi_dtype, _ call: String) -> AllReduceRequest {
        guard let base, count > 0 else { return CompletedRequest() }
        var request: OpaquePointer?
        check(dpo_mpi_iallreduce(base, count, type, &request), call)
        return MPIRequest(request!, communicator: self, call: call)
    }

    public func allGather(_ send: UnsafeRawBufferPointer, into receive: UnsafeMutableRawBufferPointer) {
        precondition(receive.count >= send.count * size,
                     "allGather: receive holds \(receive.count) bytes, needs \(send.count * size)")
        guard send.count > 0 else { return }
        watched("MPI_Allgather") { dpo_mpi_allgather(send.baseAddress!, send.count, receive.baseAddress!) }
    }

    public func allGatherVariable(_ send: UnsafeRawBufferPointer) -> [[UInt8]] {
        var count = UInt64(send.count)
        var counts = [UInt64](repeating: 0, count: size)
        withUnsafeBytes(of: &count) { one in
            counts.withUnsafeMutableBytes { allGather(one, into: $0) }
        }
        let sizes = counts.map { Int($0) }
        let total = sizes.reduce(0, +)
        var received = [UInt8](repeating: 0, count: Swift.max(total, 1))
        CollectiveWatchdog.shared.enter("MPI_Allgatherv")
        let code = received.withUnsafeMutableBytes { out in
            sizes.withUnsafeBufferPointer { dpo_mpi_allgatherv(send.baseAddress, send.count, out.baseAddress!, $0.baseAddress!) }
        }
        CollectiveWatchdog.shared.leave()
        check(code, "MPI_Allgatherv")
        var parts: [[UInt8]] = []
        var offset = 0
        for n in sizes {
            parts.append(Array(received[offset..<(offset + n)]))
            offset += n
        }
        return parts
    }

    // MARK: - Ending

    public func abort(code: Int32, message: String) -> Never {
        FileHandle.standardError.write(Data("rank \(rank): \(message)\n".utf8))
        dpo_mpi_abort(code)
        exit(code)  // not reached: MPI_Abort ends the process
    }

    public func finalize() {
        guard !finalized else { return }
        finalized = true
        _ = dpo_mpi_finalize()
    }
}

/// An outstanding MPI_Iallreduce.
final class MPIRequest: AllReduceRequest {
    private var handle: OpaquePointer?
    private unowned let communicator: MPICommunicator
    private let call: String

    init(_ handle: OpaquePointer, communicator: MPICommunicator, call: String) {
        self.handle = handle
        self.communicator = communicator
        self.call = call
    }

    func wait() {
        guard let handle else { return }
        self.handle = nil
        communicator.watched("MPI_Wait(\(call))") { dpo_mpi_wait(handle) }
    }

    func test() -> Bool {
        guard let handle else { return true }
        var done: Int32 = 0
        let code = dpo_mpi_test(handle, &done)
        if done != 0 { self.handle = nil }
        communicator.check(code, "MPI_Test(\(call))")
        return done != 0
    }

    /// A request dropped before completion is waited for: its buffer is still in use by MPI.
    deinit { wait() }
}
