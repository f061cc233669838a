import Foundation

/// The room left under every cgroup memory limit that applies to this process: its own cgroup
/// and each ancestor up to the root (v2 `memory.max`, v1 `memory.limit_in_bytes`). The limit may
/// sit on any level, not on the root of /sys/fs/cgroup: Slurm and systemd place jobs in nested
/// cgroups without a cgroup namespace. /proc/self/cgroup names the path.
///
/// Used memory is the working set, as the kernel and container tools count it: usage minus the
/// inactive file pages (page cache the kernel reclaims before it OOM-kills), so a job that has
/// read a large dataset or checkpoint is not counted as full.
enum CgroupMemoryLimits {
    /// One figure per limited level; empty when no limit is readable.
    static func room(root: String) -> [AvailableMemory] {
        func integer(_ path: String) -> Int? {
            guard let text = try? String(contentsOfFile: root + path, encoding: .utf8) else { return nil }
            return Int(text.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        var result: [AvailableMemory] = []
        let paths = cgroupPaths(root: root)
        for (label, path) in levels(paths.v2) {
            let directory = "/sys/fs/cgroup\(path)"
            // v2: "max" (no limit) does not parse as a number and is skipped.
            if let limit = integer("\(directory)/memory.max"), let current = integer("\(directory)/memory.current") {
                let used = workingSet(usage: current, stat: root + "\(directory)/memory.stat", keys: ["inactive_file"])
                result.append(AvailableMemory(bytes: max(0, limit - used), source: "cgroup v2 memory.max" + label))
            }
        }
        for (label, path) in levels(paths.v1) {
            let directory = "/sys/fs/cgroup/memory\(path)"
            // v1: no limit reads as a huge number (page-rounded LONG_MAX).
            if let limit = integer("\(directory)/memory.limit_in_bytes"), limit < 1 << 60,
               let usage = integer("\(directory)/memory.usage_in_bytes") {
                // total_ counts the cgroup's descendants too, as usage_in_bytes does.
                let used = workingSet(usage: usage, stat: root + "\(directory)/memory.stat", keys: ["total_inactive_file", "inactive_file"])
                result.append(AvailableMemory(bytes: max(0, limit - used), source: "cgroup v1 memory.limit_in_bytes" + label))
            }
        }
        return result
    }

    /// `usage` minus the first of `keys` found in the memory.stat file at `stat` ("key bytes" lines),
    /// never below 0; `usage` itself when the file or the keys are missing.
    static func workingSet(usage: Int, stat: String, keys: [String]) -> Int {
        guard let text = try? String(contentsOfFile: stat, encoding: .utf8) else { return usage }
        var values: [Substring: Int] = [:]
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ")
            if fields.count == 2, let value = Int(fields[1]) { values[fields[0]] = value }
        }
        guard let inactive = keys.lazy.compactMap({ values[Substring($0)] }).first else { return usage }
        return max(0, usage - inactive)
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
