import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// This process's CPU time and page faults so far (`getrusage(RUSAGE_SELF)`, all threads);
/// the difference of two readings is what happened in between. The benches report system
/// time and minor faults beside CPU time: faulting in fresh pages of a large buffer is paid
/// in system time, which grows with buffers allocated (or zero-filled) per step or per load.
public struct ResourceUsage: Sendable, Equatable {
    public var userSeconds: Double
    public var systemSeconds: Double
    /// Faults served without I/O (a fresh anonymous page, a page already in the page cache).
    public var minorFaults: Int
    /// Faults that read from disk.
    public var majorFaults: Int

    public init(userSeconds: Double = 0, systemSeconds: Double = 0, minorFaults: Int = 0, majorFaults: Int = 0) {
        self.userSeconds = userSeconds
        self.systemSeconds = systemSeconds
        self.minorFaults = minorFaults
        self.majorFaults = majorFaults
    }

    /// User + system seconds.
    public var cpuSeconds: Double { userSeconds + systemSeconds }

    /// The reading now.
    public static func now() -> ResourceUsage { reading(RUSAGE_SELF.rawValue) }

    /// The calling thread's reading now (`RUSAGE_THREAD`, Linux): what this thread alone spent.
    public static func thisThread() -> ResourceUsage { reading(1 /* RUSAGE_THREAD */) }

    /// `getrusage(who)`; zeros where it fails.
    private static func reading(_ who: Int32) -> ResourceUsage {
        var usage = rusage()
        guard getrusage(who, &usage) == 0 else { return ResourceUsage() }
        func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
        return ResourceUsage(userSeconds: seconds(usage.ru_utime), systemSeconds: seconds(usage.ru_stime),
                             minorFaults: Int(usage.ru_minflt), majorFaults: Int(usage.ru_majflt))
    }

    public static func - (later: ResourceUsage, earlier: ResourceUsage) -> ResourceUsage {
        ResourceUsage(userSeconds: later.userSeconds - earlier.userSeconds, systemSeconds: later.systemSeconds - earlier.systemSeconds,
                      minorFaults: later.minorFaults - earlier.minorFaults, majorFaults: later.majorFaults - earlier.majorFaults)
    }
}
