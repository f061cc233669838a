import CMPIShim
import Foundation

/// Exercises every collective of a communicator with known answers (`dpo mpi-check`).
///
/// Data are functions of (rank, index), so each rank computes the expected result of every
/// collective by itself. A wrong answer throws `CollectiveSelfCheck.Failure` naming the
/// check and the first wrong element; the caller ends the job with it.
public enum CollectiveSelfCheck {
    public struct Failure: Error, CustomStringConvertible {
        public let check: String
        public let detail: String
        public var description: String { "mpi-check \(check) failed: \(detail)" }
        public init(check: String, detail: String) {
            self.check = check
            self.detail = detail
        }
    }

    /// Runs every check; `report` receives one line per passed check.
    public static func run(_ communicator: Communicator, report: (String) -> Void) throws {
        let checks: [(String, (Communicator) throws -> String)] = [
            ("world", checkWorld), ("broadcast", checkBroadcast), ("all-gather", checkAllGather),
            ("all-reduce fp32", checkAllReduceFloat), ("all-reduce fp64/int64", checkAllReduceDoubleAndMax),
            ("all-reduce fp16", checkAllReduceHalf), ("non-blocking overlap", checkNonBlocking),
            ("reducer fp32", { try checkReducer($0, wireType: .fp32) }),
            ("reducer fp16", { try checkReducer($0, wireType: .fp16) }),
            ("reducer inf/NaN agreement", checkReducerNonFinite),
            ("reduce-scatter and in-place all-gather", checkReduceScatterAndGather),
            ("sharded reducer fp32", { try checkShardedReducer($0, wireType: .fp32) }),
            ("sharded reducer fp16", { try checkShardedReducer($0, wireType: .fp16) }),
            ("parameter broadcast and consistency", checkConsistency), ("same run", checkSameRun),
        ]
        for (name, check) in checks {
            let detail = try check(communicator)
            report("ok  \(name)\(detail.isEmpty ? "" : ": " + detail)")
        }
    }

    // MARK: - Data

    /// Exact in fp32 and in sums over up to 2^16 ranks: multiples of 1/4 in [-12, 13].
    static func exactValue(rank: Int, index: Int) -> Float {
        Float((index &* 7 &+ rank &* 13) % 101) * 0.25 - 12
    }

    /// A pseudo-random binary16 bit pattern of magnitude in [2^-6, 2^6), sign random.
    static func halfValue(rank: Int, index: Int) -> UInt16 {
        var z = UInt64(truncatingIfNeeded: index) &* 0x9E37_79B9_7F4A_7C15 ^ UInt64(rank + 1) &* 0xBF58_476D_1CE4_E5B9
        z ^= z >> 31
        let exponent = UInt16(9 + (z % 12))        // biased exponents 9...20
        let mantissa = UInt16((z >> 8) & 0x3ff)
        let sign: UInt16 = (z >> 20) & 1 == 1 ? 0x8000 : 0
        return sign | (exponent << 10) | mantissa
    }

    static func float(fromHalf bits: UInt16) -> Float { Float(Float16(bitPattern: bits)) }

    static func fail(_ check: String, _ detail: String) -> Failure { Failure(check: check, detail: detail) }

    // MARK: - Checks

    static func checkWorld(_ c: Communicator) throws -> String {
        let ranks = c.allGather([Int64(c.rank)])
        guard ranks.map({ $0.first ?? -1 }) == (0..<Int64(c.size)).map({ $0 }) else {
            throw fail("world", "ranks gathered \(ranks), expected 0..<\(c.size)")
        }
        let leaders = try checkNodeLeaders(c)
        c.barrier()
        return "\(c.size) rank(s); node rank \(c.node.rank) of \(c.node.size); host leader of each rank: "
            + leaders.map(String.init).joined(separator: " ")
    }

    /// Every rank's `node.leader` (the world rank of its host's first rank), after checking that
    /// they agree: a leader is node rank 0 and its own leader, and as many ranks name it as its
    /// host has ranks.
    static func checkNodeLeaders(_ c: Communicator) throws -> [Int] {
        let nodes = c.allGather([Int64(c.node.rank), Int64(c.node.size), Int64(c.node.leader)]).map { $0.map(Int.init) }
        let leaders = nodes.map { $0.count == 3 ? $0[2] : -1 }
        for (rank, leader) in leaders.enumerated() {
            guard nodes.indices.contains(leader), nodes[leader][0] == 0, nodes[leader][2] == leader,
                  leaders.filter({ $0 == leader }).count == nodes[leader][1] else {
                throw fail("world", "rank \(rank) names rank \(leader) its host's first rank; (node rank, size, leader) of each rank: \(nodes)")
            }
        }
        return leaders
    }

    static func checkBroadcast(_ c: Communicator) throws -> String {
        // Same order on every rank (a Set's order differs between processes).
        for root in c.size > 1 ? [0, c.size - 1] : [0] {
            var bytes = [UInt8](repeating: UInt8(truncatingIfNeeded: c.rank), count: 100_003)
            if c.rank == root { for i in bytes.indices { bytes[i] = UInt8(truncatingIfNeeded: i &* 31 &+ root) } }
            bytes.withUnsafeMutableBytes { c.broadcast($0, root: root) }
            for i in bytes.indices where bytes[i] != UInt8(truncatingIfNeeded: i &* 31 &+ root) {
                throw fail("broadcast", "root \(root): byte \(i) is \(bytes[i])")
            }
        }
        return ""
    }

    static func checkAllGather(_ c: Communicator) throws -> String {
        var mine = [Int32](repeating: Int32(c.rank * 10), count: 5)
        var all = [Int32](repeating: -1, count: 5 * c.size)
        mine.withUnsafeMutableBytes { send in all.withUnsafeMutableBytes { c.allGather(UnsafeRawBufferPointer(send), into: $0) } }
        for r in 0..<c.size where all[(5 * r)..<(5 * r + 5)].contains(where: { $0 != Int32(r * 10) }) {
            throw fail("all-gather", "rank \(r)'s slot holds \(Array(all[(5 * r)..<(5 * r + 5)]))")
        }
        let variable = c.allGather([Float](repeating: Float(c.rank), count: c.rank + 1))
        for r in 0..<c.size where variable[r] != [Float](repeating: Float(r), count: r + 1) {
            throw fail("all-gather", "variable sizes: rank \(r) sent \(r + 1) x \(r), received \(variable[r])")
        }
        return "equal and variable sizes"
    }

    static func checkAllReduceFloat(_ c: Communicator) throws -> String {
        let count = 1_000_003
        var buffer = (0..<count).map { exactValue(rank: c.rank, index: $0) }
        buffer.withUnsafeMutableBufferPointer { c.allReduceSum($0) }
        for i in 0..<count {
            let expected = (0..<c.size).reduce(Float(0)) { $0 + exactValue(rank: $1, index: i) }
            if buffer[i] != expected { throw fail("all-reduce fp32", "element \(i) is \(buffer[i]), expected \(expected)") }
        }
        return "\(count) elements, exact"
    }

    static func checkAllReduceDoubleAndMax(_ c: Communicator) throws -> String {
        let sums = c.sum([Double(c.rank) + 0.5, 1])
        let expected = Double(c.size * (c.size - 1) / 2) + 0.5 * Double(c.size)
        guard sums == [expected, Double(c.size)] else { throw fail("all-reduce fp64", "got \(sums), expected [\(expected), \(c.size)]") }
        let largest = c.max(Int64(c.rank * 3))
        guard largest == Int64((c.size - 1) * 3) else { throw fail("all-reduce max", "got \(largest)") }
        guard c.anyRank(c.rank == c.size - 1), !c.anyRank(false) else { throw fail("any-rank flag", "disagrees") }
        return ""
    }

    /// Each addition of two halves is correctly rounded: on 2 ranks the result is exactly the
    /// half nearest the exact sum; on N ranks within (N-1) roundings of the partial sums.
    static func checkHalfSum(_ check: String, _ result: [UInt16], size: Int, value: (Int, Int) -> UInt16) throws {
        for i in result.indices {
            var exact = 0.0, magnitude = 0.0
            for r in 0..<size {
                let v = Double(float(fromHalf: value(r, i)))
                exact += v
                magnitude += abs(v)
            }
            if size == 2 {
                // One addition, correctly rounded: exactly the half nearest the exact sum.
                if result[i] != Float16(exact).bitPattern {
                    throw fail(check, "element \(i) is \(float(fromHalf: result[i])), the correctly rounded sum is \(Float16(exact))")
                }
                continue
            }
            let got = Double(float(fromHalf: result[i]))
            let tolerance = Double(size - 1) * magnitude * 0x1p-11 + 0x1p-25
            if !(abs(got - exact) <= tolerance) {
                throw fail(check, "element \(i) is \(got), exact sum \(exact), tolerance \(tolerance)")
            }
        }
    }

    static func checkAllReduceHalf(_ c: Communicator) throws -> String {
        let count = 3_000_001  // 6 MB: many pipeline segments, odd length
        var buffer = (0..<count).map { halfValue(rank: c.rank, index: $0) }
        buffer.withUnsafeMutableBufferPointer { c.allReduceSumHalf($0) }
        try checkHalfSum("all-reduce fp16", buffer, size: c.size, value: halfValue)
        var special: [UInt16] = [c.rank == 0 ? 0x7c00 : 0x3c00, 0x3c00, c.rank == c.size - 1 ? 0x7e00 : 0]
        special.withUnsafeMutableBufferPointer { c.allReduceSumHalf($0) }
        guard float(fromHalf: special[0]).isInfinite || c.size == 1 && special[0] == 0x7c00,
              float(fromHalf: special[1]) == Float(c.size), float(fromHalf: special[2]).isNaN else {
            throw fail("all-reduce fp16", "inf/NaN did not propagate: \(special.map { float(fromHalf: $0) })")
        }
        return "\(count) elements within half rounding; inf and NaN propagate"
    }

    static func checkNonBlocking(_ c: Communicator) throws -> String {
        let count = 4_000_000
        var floats = (0..<count).map { exactValue(rank: c.rank, index: $0) }
        var halves = (0..<count).map { halfValue(rank: c.rank, index: $0) }
        var tests = 0
        var work: Float = 0
        floats.withUnsafeMutableBufferPointer { f in
            halves.withUnsafeMutableBufferPointer { h in
                let requests = [c.startAllReduceSum(f), c.startAllReduceSumHalf(h)]
                // "Backward": compute between tests, as the reducer does between groups.
                while !requests.allSatisfy({ $0.test() }) {
                    tests += 1
                    for i in 0..<20_000 { work += Float(i & 7) * 0.5 }
                }
                for request in requests { request.wait() }  // completed requests return at once
            }
        }
        for i in stride(from: 0, to: count, by: 997) {
            let expected = (0..<c.size).reduce(Float(0)) { $0 + exactValue(rank: $1, index: i) }
            if floats[i] != expected { throw fail("non-blocking overlap", "fp32 element \(i) is \(floats[i]), expected \(expected)") }
        }
        try checkHalfSum("non-blocking overlap", Array(halves.prefix(100_000)), size: c.size, value: halfValue)
        return "completed after \(tests) test(s) between compute (work \(work > 0 ? "done" : "none"))"
    }

    /// Groups of uneven sizes, buckets of 0.01 MiB (so groups split and share buckets).
    static let reducerGroupSizes = [7_001, 2_500, 12_000, 3, 2_621, 9_999]

    static func groupRanges() -> [Range<Int>] {
        var ranges: [Range<Int>] = [], offset = 0
        for n in reducerGroupSizes { ranges.append(offset..<(offset + n)); offset += n }
        return ranges
    }

    static func checkReducer(_ c: Communicator, wireType: GradientReducer.WireType) throws -> String {
        let ranges = groupRanges()
        let total = ranges.last!.upperBound
        var gradients = (0..<total).map { exactValue(rank: c.rank, index: $0) }
        var buckets = 0, early = 0
        try gradients.withUnsafeMutableBufferPointer { g in
            let reducer = try GradientReducer(communicator: c, gradients: g, groupRanges: ranges,
                                              bucketMegabytes: 0.01, wireType: wireType)
            buckets = reducer.buckets.count
            for step in 0..<2 {
                if step == 1 { for i in g.indices { g[i] = exactValue(rank: c.rank, index: i) } }
                for group in ranges.indices.reversed() { reducer.groupReady(group) }
                let reduction = reducer.finish()
                early = reduction.bucketsStartedEarly
                if reduction.nonFinite { throw fail("reducer \(wireType)", "reported a non-finite gradient") }
            }
        }
        for i in 0..<total {
            let mean = (0..<c.size).reduce(Float(0)) { $0 + exactValue(rank: $1, index: i) } / Float(c.size)
            let tolerance: Float = wireType == .fp32 || c.size == 1 ? abs(mean) * 1e-6 : 13 * 0x1p-10 * Float(c.size)
            if !(abs(gradients[i] - mean) <= tolerance) {
                throw fail("reducer \(wireType)", "element \(i) is \(gradients[i]), mean over ranks \(mean)")
            }
        }
        return "\(buckets) buckets, \(early) started during backward, mean over ranks"
    }

    static func checkReducerNonFinite(_ c: Communicator) throws -> String {
        let ranges = groupRanges()
        for wireType in GradientReducer.WireType.allCases {
            var gradients = [Float](repeating: 0.5, count: ranges.last!.upperBound)
            if c.rank == c.size - 1 { gradients[12_345] = .nan }
            let reduction = try gradients.withUnsafeMutableBufferPointer { g in
                let reducer = try GradientReducer(communicator: c, gradients: g, groupRanges: ranges,
                                                  bucketMegabytes: 0.01, wireType: wireType)
                return reducer.finish()
            }
            if !reduction.nonFinite { throw fail("reducer inf/NaN agreement", "\(wireType): NaN on rank \(c.size - 1) not reported") }
        }
        return "NaN on rank \(c.size - 1) reported on every rank, fp32 and fp16"
    }

    static func checkConsistency(_ c: Communicator) throws -> String {
        var parameters = (0..<50_001).map { Float($0) * 1e-3 + Float(c.rank) }
        parameters.withUnsafeMutableBufferPointer { c.broadcastParameters($0) }
        if parameters[1] != 1e-3 { throw fail("parameter broadcast", "rank \(c.rank) holds \(parameters[1]) after broadcast") }
        try parameters.withUnsafeBufferPointer { try c.checkConsistency($0, step: 3) }
        guard c.size > 1 else { return "one rank: nothing can diverge" }
        if c.rank == c.size - 1 { parameters[777] = parameters[777].nextUp }
        do {
            try parameters.withUnsafeBufferPointer { try c.checkConsistency($0, step: 7) }
            throw fail("consistency", "a one-ulp difference on rank \(c.size - 1) was not detected")
        } catch let error as DistributedError {
            guard error == .weightsDiverged(step: 7, ranks: [c.size - 1]) else { throw fail("consistency", "wrong error: \(error)") }
        }
        return "one-ulp difference on rank \(c.size - 1) detected"
    }

    static func checkSameRun(_ c: Communicator) throws -> String {
        let binary = RunFingerprint.executable()
        try c.verifySameRun([("binary", binary), ("configuration", "beta=0.1")])
        guard c.size > 1 else { return "one rank" }
        do {
            try c.verifySameRun([("binary", binary), ("configuration", c.rank == c.size - 1 ? "beta=0.2" : "beta=0.1")])
            throw fail("same run", "a different configuration on rank \(c.size - 1) was not detected")
        } catch let error as DistributedError {
            guard error == .runMismatch(part: "configuration", ranks: [c.size - 1]) else { throw fail("same run", "wrong error: \(error)") }
        }
        return "binary \(binary.prefix(8))...; different configuration on rank \(c.size - 1) detected"
    }
}
