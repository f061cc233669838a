import CMPIShim

/// The sharded collectives of ZeRO-1 over MPI: MPI_Reduce_scatter, MPI_Ireduce_scatter and
/// an in-place MPI_Allgatherv, each marked for the `CollectiveWatchdog` like the others.
extension MPICommunicator {
    public func reduceScatterSum(_ send: UnsafeBufferPointer<Float>, into receive: UnsafeMutableBufferPointer<Float>, counts: [Int]) {
        checkCounts(counts, sent: send.count, received: receive.count, "reduceScatterSum")
        guard let sendBase = send.baseAddress, send.count > 0 else { return }
        // A rank receiving nothing may pass an empty buffer; MPI still wants a pointer.
        let receiveBase = receive.baseAddress.map(UnsafeMutableRawPointer.init) ?? UnsafeMutableRawPointer(mutating: sendBase)
        watched("MPI_Reduce_scatter(float)") {
            counts.withUnsafeBufferPointer { dpo_mpi_reduce_scatter(sendBase, receiveBase, sizes($0), DPO_MPI_F32) }
        }
    }

    public func startReduceScatterSum(_ send: UnsafeBufferPointer<Float>, into receive: UnsafeMutableBufferPointer<Float>,
                                      counts: [Int]) -> AllReduceRequest {
        checkCounts(counts, sent: send.count, received: receive.count, "startReduceScatterSum")
        return startScatter(UnsafeRawPointer(send.baseAddress), UnsafeMutableRawPointer(receive.baseAddress), counts: counts,
                            DPO_MPI_F32, "MPI_Ireduce_scatter(float)")
    }

    public func startReduceScatterSumHalf(_ send: UnsafeBufferPointer<UInt16>, into receive: UnsafeMutableBufferPointer<UInt16>,
                                          counts: [Int]) -> AllReduceRequest {
        checkCounts(counts, sent: send.count, received: receive.count, "startReduceScatterSumHalf")
        return startScatter(UnsafeRawPointer(send.baseAddress), UnsafeMutableRawPointer(receive.baseAddress), counts: counts,
                            DPO_MPI_F16, "MPI_Ireduce_scatter(half)")
    }

    public func allGatherInPlace(_ buffer: UnsafeMutableBufferPointer<Float>, counts: [Int]) {
        gatherInPlace(UnsafeMutableRawPointer(buffer.baseAddress), count: buffer.count, counts: counts, DPO_MPI_F32, "MPI_Allgatherv(float)")
    }

    public func allGatherInPlaceHalf(_ buffer: UnsafeMutableBufferPointer<UInt16>, counts: [Int]) {
        gatherInPlace(UnsafeMutableRawPointer(buffer.baseAddress), count: buffer.count, counts: counts, DPO_MPI_F16, "MPI_Allgatherv(half)")
    }

    // MARK: - Helpers

    private func checkCounts(_ counts: [Int], sent: Int, received: Int, _ call: String) {
        precondition(counts.count == size && counts.allSatisfy { $0 >= 0 } && sent == counts.reduce(0, +) && received >= counts[rank],
                     "\(call): \(sent) elements sent, counts \(counts), \(received) received")
    }

    private func startScatter(_ send: UnsafeRawPointer?, _ receive: UnsafeMutableRawPointer?, counts: [Int],
                              _ type: dpo_mpi_dtype, _ call: String) -> AllReduceRequest {
        guard counts.reduce(0, +) > 0 else { return CompletedRequest() }
        var request: OpaquePointer?
        let code = counts.withUnsafeBufferPointer { c in
            // A rank receiving nothing may pass an empty buffer; MPI still wants a pointer.
            dpo_mpi_ireduce_scatter(send, receive ?? UnsafeMutableRawPointer(mutating: send!), sizes(c), type, &request)
        }
        check(code, call)
        return MPIRequest(request!, communicator: self, call: call)
    }

    private func gatherInPlace(_ base: UnsafeMutableRawPointer?, count: Int, counts: [Int], _ type: dpo_mpi_dtype, _ call: String) {
        precondition(counts.count == size && count == counts.reduce(0, +), "\(call): \(count) elements, counts \(counts)")
        guard let base, count > 0 else { return }
        watched(call) { counts.withUnsafeBufferPointer { dpo_mpi_allgatherv_inplace(base, sizes($0), type) } }
    }

    /// The counts as the C shim's `size_t *` (Swift imports `size_t` as `Int`).
    private func sizes(_ counts: UnsafeBufferPointer<Int>) -> UnsafePointer<Int> {
        counts.baseAddress!
    }
}
