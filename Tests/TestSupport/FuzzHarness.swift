import Foundation

// MARK: - Running fuzz cases with time and memory bounds

/// Runs the fuzz cases of one input kind and records what each did: loaded, refused with an
/// error, too slow (CPU time), or refused with an error that does not name the file.
///
/// A crash cannot be caught here (it ends the test process, which is the failure); everything
/// else is collected in `failures` for the test to assert empty. Memory: `ru_maxrss` (the
/// process's peak resident set) is read at the start and by `finish()`; its growth over the run
/// must stay under `residentGrowthLimit`, which catches a header or config that makes the reader
/// allocate from a size it claims instead of from what the file holds.
public final class FuzzRun {
    public enum Outcome {
        case loaded
        case refused(String)
    }

    public let kind: String
    /// A case that takes more CPU seconds than this fails (a hang or a quadratic blow-up on a small input).
    public let caseTimeLimit: Double
    /// Allowed growth of the process's peak resident set over the whole run, in bytes.
    public let residentGrowthLimit: Int
    public private(set) var cases = 0
    public private(set) var loaded = 0
    public private(set) var refused = 0
    public private(set) var slowestCase = 0.0
    public private(set) var failures: [String] = []
    private let startResident: Int
    private let startTime: Double
    private let startCPU: Double

    public init(kind: String, caseTimeLimit: Double = 2, residentGrowthLimit: Int = 256 << 20) {
        self.kind = kind
        self.caseTimeLimit = caseTimeLimit
        self.residentGrowthLimit = residentGrowthLimit
        startResident = peakResidentBytes()
        startTime = monotonicSeconds()
        startCPU = processCPUSeconds()
    }

    /// Runs one case. `body` loads the mutated input (and uses what it loaded); a thrown error is a
    /// refusal, whose message must be non-empty and contain `fileName`.
    @discardableResult
    public func run(_ label: @autoclosure () -> String, fileName: String, _ body: () throws -> Void) -> Outcome {
        cases += 1
        let start = processCPUSeconds()
        var outcome = Outcome.loaded
        do {
            try body()
            loaded += 1
        } catch {
            refused += 1
            let message = "\(error)"
            outcome = .refused(message)
            if message.isEmpty || !message.contains(fileName) {
                failures.append("\(kind) case \(cases) (\(label())): error does not name \(fileName): \(message.prefix(300))")
            }
        }
        // CPU time, not wall time: a hang or a quadratic blow-up burns CPU, while a loaded host's
        // waiting (other processes on the cores, a swap-in) does not count against the case.
        let seconds = processCPUSeconds() - start
        if seconds > caseTimeLimit {
            failures.append("\(kind) case \(cases) (\(label())): took \(String(format: "%.2f", seconds)) s of CPU (limit \(caseTimeLimit) s)")
        }
        slowestCase = max(slowestCase, seconds)
        return outcome
    }

    /// Records a failed check on something a case loaded.
    public func fail(_ message: String) {
        failures.append("\(kind) case \(cases): \(message)")
    }

    /// Checks the resident-set growth and returns a one-line summary (cases, loaded, refused, time, memory).
    public func finish() -> String {
        let growth = peakResidentBytes() - startResident
        if growth > residentGrowthLimit {
            failures.append("\(kind): peak resident set grew by \(growth >> 20) MB (limit \(residentGrowthLimit >> 20) MB)")
        }
        return "\(kind): \(cases) cases, \(loaded) loaded, \(refused) refused, "
            + String(format: "%.1f s (%.1f s CPU), slowest case %.3f s CPU, ", monotonicSeconds() - startTime,
                     processCPUSeconds() - startCPU, slowestCase)
            + "peak RSS growth \(max(growth, 0) >> 20) MB"
    }
}

/// The process's peak resident set size in bytes (`getrusage`; Linux reports KB, macOS bytes).
public func peakResidentBytes() -> Int {
    var usage = rusage()
    #if os(Linux)
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Int(usage.ru_maxrss) * 1024
    #else
    getrusage(RUSAGE_SELF, &usage)
    return Int(usage.ru_maxrss)
    #endif
}

/// User + system CPU seconds of the process so far (`getrusage`): the fuzz cost without the waiting
/// a busy machine adds to the wall-clock time.
public func processCPUSeconds() -> Double {
    var usage = rusage()
    #if os(Linux)
    getrusage(RUSAGE_SELF.rawValue, &usage)
    #else
    getrusage(RUSAGE_SELF, &usage)
    #endif
    func seconds(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1e6 }
    return seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// Seconds on a monotonic clock.
public func monotonicSeconds() -> Double {
    Double(DispatchTime.now().uptimeNanoseconds) / 1e9
}

/// A fresh temporary directory for one fuzz test.
public func makeFuzzDirectory(_ name: String) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("fuzz-\(name)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}
