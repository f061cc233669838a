/// `dpo mpi-check` of ZeRO-1's collectives: reduce-scatter (blocking, non-blocking, fp16),
/// the in-place all-gather, and `GradientReduceScatter` against `GradientReducer`.
extension CollectiveSelfCheck {
    static func checkReduceScatterAndGather(_ c: Communicator) throws -> String {
        let check = "reduce-scatter and in-place all-gather"
        let total = 100_003  // odd: shards differ in size
        let counts = ParameterShards.ranges(total: total, ranks: c.size).map(\.count)
        let mine = ParameterShards.ranges(total: total, ranks: c.size)[c.rank]
        let send = (0..<total).map { exactValue(rank: c.rank, index: $0) }
        func expectedSum(_ i: Int) -> Float { (0..<c.size).reduce(Float(0)) { $0 + exactValue(rank: $1, index: i) } }
        // Blocking, then non-blocking with all elements going to the last rank (zeros elsewhere).
        var blocking = [Float](repeating: .nan, count: mine.count)
        send.withUnsafeBufferPointer { s in blocking.withUnsafeMutableBufferPointer { c.reduceScatterSum(s, into: $0, counts: counts) } }
        for (k, i) in mine.enumerated() where blocking[k] != expectedSum(i) {
            throw fail(check, "blocking: element \(i) is \(blocking[k]), expected \(expectedSum(i))")
        }
        let lastOnly = (0..<c.size).map { $0 == c.size - 1 ? total : 0 }
        var nonBlocking = [Float](repeating: .nan, count: c.rank == c.size - 1 ? total : 0)
        send.withUnsafeBufferPointer { s in
            nonBlocking.withUnsafeMutableBufferPointer { c.startReduceScatterSum(s, into: $0, counts: lastOnly).wait() }
        }
        for i in nonBlocking.indices where nonBlocking[i] != expectedSum(i) {
            throw fail(check, "non-blocking: element \(i) is \(nonBlocking[i]), expected \(expectedSum(i))")
        }
        let halves = (0..<total).map { halfValue(rank: c.rank, index: $0) }
        var halfShard = [UInt16](repeating: 0, count: mine.count)
        halves.withUnsafeBufferPointer { s in
            halfShard.withUnsafeMutableBufferPointer { c.startReduceScatterSumHalf(s, into: $0, counts: counts).wait() }
        }
        try checkHalfSum(check, halfShard, size: c.size) { rank, k in halfValue(rank: rank, index: mine.lowerBound + k) }
        // In-place all-gather: each rank fills its shard only.
        var gathered = [Float](repeating: .nan, count: total)
        for i in mine { gathered[i] = exactValue(rank: c.rank, index: i) }
        gathered.withUnsafeMutableBufferPointer { c.allGatherInPlace($0, counts: counts) }
        var gatheredHalves = [UInt16](repeating: 0xffff, count: total)
        for i in mine { gatheredHalves[i] = halfValue(rank: c.rank, index: i) }
        gatheredHalves.withUnsafeMutableBufferPointer { c.allGatherInPlaceHalf($0, counts: counts) }
        for r in 0..<c.size {
            for i in ParameterShards.ranges(total: total, ranks: c.size)[r] {
                if gathered[i] != exactValue(rank: r, index: i) || gatheredHalves[i] != halfValue(rank: r, index: i) {
                    throw fail(check, "all-gather: element \(i) of rank \(r)'s shard is \(gathered[i]) / \(gatheredHalves[i])")
                }
            }
        }
        return "\(total) elements in shards of \(counts.map(String.init).joined(separator: "/")), fp32 exact, fp16 within half rounding"
    }

    /// `GradientReduceScatter` leaves in each rank's shard exactly what `GradientReducer` leaves
    /// there (same buckets, same pre-division, same sums).
    static func checkShardedReducer(_ c: Communicator, wireType: GradientReducer.WireType) throws -> String {
        let check = "sharded reducer \(wireType)"
        let ranges = groupRanges()
        let total = ranges.last!.upperBound
        var full = (0..<total).map { exactValue(rank: c.rank, index: $0) }
        var local = full
        try full.withUnsafeMutableBufferPointer { g in
            let reducer = try GradientReducer(communicator: c, gradients: g, groupRanges: ranges, bucketMegabytes: 0.01, wireType: wireType)
            for group in ranges.indices.reversed() { reducer.groupReady(group) }
            _ = reducer.finish()
        }
        var shard: [Float] = [], early = 0, buckets = 0
        try local.withUnsafeMutableBufferPointer { g in
            let scatter = try GradientReduceScatter(
                communicator: c, gradients: g, groupRanges: ranges, bucketMegabytes: 0.01, wireType: wireType)
            buckets = scatter.buckets.count
            for group in ranges.indices.reversed() { scatter.groupReady(group) }
            let reduction = scatter.finish()
            if reduction.nonFinite { throw fail(check, "reported a non-finite gradient") }
            early = reduction.bucketsStartedEarly
            shard = Array(scatter.shardGradients)
        }
        let mine = ParameterShards.ranges(total: total, ranks: c.size)[c.rank]
        // Up to 2 ranks a sum is one addition, so both collectives give the same bits; beyond,
        // MPI may add in another order (the reducer check's tolerances).
        let tolerance: Float = c.size <= 2 ? 0 : (wireType == .fp32 ? 1e-5 : 13 * 0x1p-10 * Float(c.size))
        for (k, i) in mine.enumerated() where !(abs(shard[k] - full[i]) <= tolerance * Swift.max(1, abs(full[i]))) {
            throw fail(check, "element \(i) is \(shard[k]), the all-reduce gives \(full[i])")
        }
        return "\(buckets) buckets, \(early) started during backward; shard \(mine) equals the all-reduced mean"
            + (c.size <= 2 ? " bit for bit" : "")
    }
}
