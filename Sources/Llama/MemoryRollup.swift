import Foundation

/// This process's memory from `/proc/self/smaps_rollup` (Linux; zeros elsewhere), in KiB.
///
/// `rss` counts every resident page mapped, so pages several processes share (a host's shared
/// reference in shared memory) count in full in each; `pss` divides each page by the processes
/// mapping it, so the host's ranks' `pss` add up to what the host holds.
public struct MemoryRollup: Equatable, Sendable {
    public var rss = 0
    public var pss = 0
    /// Shared_Clean + Shared_Dirty: resident pages some other process maps too.
    public var shared = 0

    public init(rss: Int = 0, pss: Int = 0, shared: Int = 0) {
        self.rss = rss
        self.pss = pss
        self.shared = shared
    }

    /// Parsed from the text of an smaps_rollup file ("Rss:  1752 kB" lines).
    public init(parsing text: String) {
        func field(_ name: String) -> Int { ModelBenchmark.statusKilobytes(name, in: text) ?? 0 }
        self.init(rss: field("Rss"), pss: field("Pss"), shared: field("Shared_Clean") + field("Shared_Dirty"))
    }

    /// Now (all zero where /proc/self/smaps_rollup cannot be read).
    public static func current() -> MemoryRollup {
        guard let text = try? String(contentsOfFile: "/proc/self/smaps_rollup", encoding: .utf8) else { return MemoryRollup() }
        return MemoryRollup(parsing: text)
    }

    /// Resets the peak resident size (VmHWM) to the current RSS (`echo 5 > /proc/self/clear_refs`),
    /// so a later VmHWM is the peak of what ran since. False where the kernel does not allow it.
    @discardableResult
    public static func resetPeakResident() -> Bool {
        guard let handle = FileHandle(forWritingAtPath: "/proc/self/clear_refs") else { return false }
        defer { try? handle.close() }
        do { try handle.write(contentsOf: Data("5".utf8)) } catch { return false }
        return true
    }
}
