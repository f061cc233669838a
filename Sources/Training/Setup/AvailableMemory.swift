import Foundation

/// The memory this process may still use, and where the figure comes from: the smallest of
/// the kernel's `MemAvailable` and the room left under each cgroup limit from this process's
/// cgroup up to the root (v2 `memory.max`, v1 `memory.limit_in_bytes`). `DPO_MEMORY_AVAILABLE_MB` replaces the figure (tests, or a
/// scheduler that knows better).
struct AvailableMemory: Equatable {
    static let environmentVariable = "DPO_MEMORY_AVAILABLE_MB"

    var bytes: Int
    /// e.g. "MemAvailable", "cgroup v2 memory.max", "DPO_MEMORY_AVAILABLE_MB".
    var source: String

    /// Nil when nothing can be read (no /proc): the fit check is then skipped.
    static func current(environment: [String: String] = ProcessInfo.processInfo.environment,
                        root: String = "") throws -> AvailableMemory? {
        if let text = environment[environmentVariable] {
            guard let megabytes = Double(text.trimmingCharacters(in: .whitespaces)), megabytes >= 0, megabytes.isFinite else {
                throw TrainingError.invalidOption("\(environmentVariable)=\(text): expected a number of megabytes (MiB)")
            }
            return AvailableMemory(bytes: Int(megabytes * 1024 * 1024), source: environmentVariable)
        }
        var candidates: [AvailableMemory] = []
        func integer(_ path: String) -> Int? {
            guard let text = try? String(contentsOfFile: root + path, encoding: .utf8) else { return nil }
            return Int(text.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        if let meminfo = try? String(contentsOfFile: root + "/proc/meminfo", encoding: .utf8),
           let line = meminfo.split(separator: "\n").first(where: { $0.hasPrefix("MemAvailable:") }),
           let kib = line.split(separator: " ").compactMap({ Int($0) }).first {
            candidates.append(AvailableMemory(bytes: kib * 1024, source: "MemAvailable"))
        }
        // The limit may be set on this process's own cgroup or any ancestor, not on the root
        // of /sys/fs/cgroup: Slurm and systemd place jobs in nested cgroups without a cgroup
        // namespace. /proc/self/cgroup names the path; every level from it up is read.
        let paths = cgroupPaths(root: root)
        for (level, path) in levels(paths.v2) {
            // v2: "max" (no limit) does not parse as a number and is skipped.
            if let limit = integer("/sys/fs/cgroup\(path)/memory.max"), let used = integer("/sys/fs/cgroup\(path)/memory.current") {
                candidates.append(AvailableMemory(bytes: max(0, limit - used), source: "cgroup v2 memory.max" + level))
            }
        }
        for (level, path) in levels(paths.v1) {
            // v1: no limit reads as a huge number (page-rounded LONG_MAX).
            if let limit = integer("/sys/fs/cgroup/memory\(path)/memory.limit_in_bytes"), limit < 1 << 60,
               let used = integer("/sys/fs/cgroup/memory\(path)/memory.usage_in_bytes") {
                candidates.append(AvailableMemory(bytes: max(0, limit - used), source: "cgroup v1 memory.limit_in_bytes" + level))
            }
        }
        return candidates.min { $0.bytes < $1.bytes }
    }

    /// This process's cgroup (v2, the "0::" line) and memory-controller cgroup (v1) paths from
    /// /proc/self/cgroup, e.g. "/system.slice/slurmstepd.scope/job_7/step_0"; nil when absent.
    static func cgroupPaths(root: String) -> (v2: String?, v1: String?) {
        guard let text = try? String(contentsOfFile: root + "/proc/self/cgroup", encoding: .utf8) else { return (nil, nil) }
        var v2: String?, v1: String?
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count == 3, fields[2].hasPrefix("/") else { continue }
            if fields[0] == "0" && fields[1].isEmpty { v2 = String(fields[2]) }
            if fields[1].split(separator: ",").contains("memory") { v1 = String(fields[2]) }
        }
        return (v2, v1)
    }

    /// The levels from cgroup `path` up to the root ("" = the root itself, always included), each
    /// with what a message calls it: "" at the root, " of /a/b" below it.
    static func levels(_ path: String?) -> [(label: String, path: String)] {
        var result: [(label: String, path: String)] = []
        var components = (path ?? "").split(separator: "/").map(String.init)
        while !components.isEmpty {
            let level = "/" + components.joined(separator: "/")
            result.append((" of \(level)", level))
            components.removeLast()
        }
        return result + [("", "")]
    }
}
