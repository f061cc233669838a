import Foundation

/// Keeping the ranks of a data-parallel job identical: same weights at the start, same
/// weights after every update, same binary and configuration.
extension Communicator {
    /// Copies rank `root`'s parameters to every rank, so ranks never start apart even when
    /// each loaded or initialised its own copy.
    public func broadcastParameters(_ parameters: UnsafeMutableBufferPointer<Float>, root: Int = 0) {
        broadcast(UnsafeMutableRawBufferPointer(parameters), root: root)
    }

    /// Checksums of `parameters` on every rank, indexed by rank.
    public func parameterChecksums(_ parameters: UnsafeBufferPointer<Float>) -> [UInt64] {
        var mine = Checksum.of(UnsafeRawBufferPointer(parameters))
        var all = [UInt64](repeating: 0, count: size)
        withUnsafeBytes(of: &mine) { one in all.withUnsafeMutableBytes { allGather(one, into: $0) } }
        return all
    }

    /// Throws `weightsDiverged(step:ranks:)` naming every rank whose parameters are not
    /// bit-identical to rank 0's. The same answer on every rank (so all stop together).
    public func checkConsistency(_ parameters: UnsafeBufferPointer<Float>, step: Int) throws {
        let sums = parameterChecksums(parameters)
        let differing = sums.indices.filter { sums[$0] != sums[0] }
        if !differing.isEmpty { throw DistributedError.weightsDiverged(step: step, ranks: differing) }
    }

    /// Throws `runMismatch(part:ranks:)` for the first part whose value differs from rank
    /// 0's on some rank. `parts` are named values such as ("binary", digest of the
    /// executable), ("configuration", the run's options as JSON); every rank must pass the
    /// same names in the same order. Parts named "group: detail" (e.g. "configuration: --beta")
    /// are reported together: the first group that differs, with every differing detail.
    public func verifySameRun(_ parts: [(name: String, value: String)]) throws {
        let mine = parts.map { Checksum.of($0.value) }
        let all = allGather(mine)
        let differing: [(name: String, ranks: [Int])] = parts.indices.compactMap { index in
            let ranks = all.indices.filter { all[$0].count != mine.count || all[$0][index] != all[0][index] }
            return ranks.isEmpty ? nil : (parts[index].name, ranks)
        }
        guard let first = differing.first else { return }
        guard let colon = first.name.firstIndex(of: ":") else {
            throw DistributedError.runMismatch(part: first.name, ranks: first.ranks)
        }
        let group = String(first.name[..<colon])
        let details = differing.filter { $0.name.hasPrefix(group + ":") }
        let names = details.map { $0.name.dropFirst(group.count + 1).trimmingCharacters(in: .whitespaces) }
        throw DistributedError.runMismatch(
            part: "\(group) (\(names.joined(separator: ", ")))", ranks: Array(Set(details.flatMap(\.ranks))).sorted())
    }
}

/// Identity of the running executable, for `verifySameRun`.
public enum RunFingerprint {
    /// Checksum of this process's executable file (hex), or its path and size when it
    /// cannot be read.
    public static func executable() -> String {
        let path = "/proc/self/exe"
        if let data = FileManager.default.contents(atPath: path) {
            let sum = data.withUnsafeBytes { Checksum.of($0) }
            return String(sum, radix: 16)
        }
        return CommandLine.arguments.first ?? "unknown"
    }
}
