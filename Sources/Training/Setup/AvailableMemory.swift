import Foundation

/// The memory this process may still use, and where the figure comes from: the smallest of
/// the kernel's `MemAvailable` and the room left under the cgroup's limit (v2 `memory.max`,
/// v1 `memory.limit_in_bytes`). `DPO_MEMORY_AVAILABLE_MB` replaces the figure (tests, or a
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
        // v2: "max" (no limit) does not parse as a number and is skipped.
        if let limit = integer("/sys/fs/cgroup/memory.max"), let used = integer("/sys/fs/cgroup/memory.current") {
            candidates.append(AvailableMemory(bytes: max(0, limit - used), source: "cgroup v2 memory.max"))
        }
        // v1: no limit reads as a huge number (page-rounded LONG_MAX).
        if let limit = integer("/sys/fs/cgroup/memory/memory.limit_in_bytes"), limit < 1 << 60,
           let used = integer("/sys/fs/cgroup/memory/memory.usage_in_bytes") {
            candidates.append(AvailableMemory(bytes: max(0, limit - used), source: "cgroup v1 memory.limit_in_bytes"))
        }
        return candidates.min { $0.bytes < $1.bytes }
    }
}
