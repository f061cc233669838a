import Foundation
import Llama

/// The fit check's figure: `AvailableMemory.measured` (MemAvailable and every cgroup limit
/// from this process's cgroup up), unless `DPO_MEMORY_AVAILABLE_MB` replaces it (tests, or a
/// scheduler that knows better).
extension AvailableMemory {
    static let environmentVariable = "DPO_MEMORY_AVAILABLE_MB"

    /// Nil when nothing can be read (no /proc): the fit check is then skipped. `root`: a fake `/` (tests).
    static func current(environment: [String: String] = ProcessInfo.processInfo.environment,
                        root: String = "") throws -> AvailableMemory? {
        guard let text = environment[environmentVariable] else { return measured(root: root) }
        guard let megabytes = Double(text.trimmingCharacters(in: .whitespaces)), megabytes >= 0, megabytes.isFinite else {
            throw TrainingError.invalidOption("\(environmentVariable)=\(text): expected a number of megabytes (MiB)")
        }
        return AvailableMemory(bytes: Int(megabytes * 1024 * 1024), source: environmentVariable)
    }
}
