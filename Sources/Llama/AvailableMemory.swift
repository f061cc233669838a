import Foundation

/// The memory this process may still use, and where the figure comes from: the smallest of the
/// kernel's `MemAvailable` and the room left under each cgroup memory limit from this process's
/// cgroup up to the root (`CgroupMemoryLimits`). One reading for `dpo init`'s size check
/// (`MemoryBudget`) and the trainer's fit check (which adds an environment override).
public struct AvailableMemory: Equatable, Sendable {
    public var bytes: Int
    /// e.g. "MemAvailable", "cgroup v2 memory.max of /system.slice/job_7", "cgroup v1 memory.limit_in_bytes".
    public var source: String

    public init(bytes: Int, source: String) {
        self.bytes = bytes
        self.source = source
    }

    /// Reads /proc and /sys below `root` (a fake `/` in tests; "" = the real one). Nil when
    /// nothing can be read (no /proc): callers then skip their check.
    public static func measured(root: String = "") -> AvailableMemory? {
        var candidates = CgroupMemoryLimits.room(root: root)
        if let meminfo = try? String(contentsOfFile: root + "/proc/meminfo", encoding: .utf8),
           let line = meminfo.split(separator: "\n").first(where: { $0.hasPrefix("MemAvailable:") }),
           let kib = line.split(separator: " ").compactMap({ Int($0) }).first {
            candidates.insert(AvailableMemory(bytes: kib * 1024, source: "MemAvailable"), at: 0)
        }
        return candidates.min { $0.bytes < $1.bytes }
    }
}
