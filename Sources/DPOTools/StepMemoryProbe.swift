import Foundation
import Llama

/// The bench's sample of PSS at a step's peak (`DPOStep.memoryProbe`: the start of each policy
/// backward and each gradient bucket about to go; the bench adds the step's end). PSS sampled after the step
/// misses `--zero 2`'s peak (its gradient window pages are gone by then); VmHWM catches it but
/// counts the host's shared reference in full in each rank.
///
/// A sample reads `/proc/self/smaps_rollup` (about 2 ms of CPU for a 2.5 GB process, a walk of
/// its page tables); the probe counts the CPU seconds it spent so the bench can leave them out
/// of the step's CPU time.
final class StepMemoryProbe {
    /// Largest PSS and the RSS of that sample, KiB (0 before any sample).
    private(set) var peak = MemoryRollup()
    private(set) var samples = 0
    /// CPU (user + system) and system seconds the samples took, this thread.
    private(set) var cpuSeconds = 0.0, systemSeconds = 0.0

    func sample() {
        let before = ResourceUsage.thisThread()
        let now = MemoryRollup.current()
        if now.pss > peak.pss { peak = now }
        samples += 1
        let spent = ResourceUsage.thisThread() - before
        cpuSeconds += spent.cpuSeconds
        systemSeconds += spent.systemSeconds
    }
}
