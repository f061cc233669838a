import Foundation
import Llama

/// Where the start-up time goes: wall and CPU seconds of each part before the first step
/// (memory check, model load, fingerprints, tokenizer, data, output directory, step), and the
/// time the process had already run before the trainer began (program load, MPI set-up,
/// argument parsing). Printed as one line once the run is ready, so a slow start names its cause.
final class StartupTimeline {
    struct Part {
        let name: String
        let wall: Double
        let cpu: Double
    }

    private(set) var parts: [Part] = []
    /// Seconds from the process's start to this timeline's creation (nil where /proc is missing).
    let beforeSetup: Double?
    private let clock = ContinuousClock()
    private let start: ContinuousClock.Instant
    private var last: (wall: ContinuousClock.Instant, cpu: Double)

    init() {
        beforeSetup = Self.processAge()
        start = clock.now
        last = (start, ResourceUsage.now().cpuSeconds)
    }

    /// Closes the part that ran since the previous mark (or the start).
    func mark(_ name: String) {
        let now = clock.now, cpu = ResourceUsage.now().cpuSeconds
        parts.append(Part(name: name, wall: Self.seconds(now - last.wall), cpu: cpu - last.cpu))
        last = (now, cpu)
    }

    /// "ready in 2.41 s (1.93 s CPU): before setup 0.31, memory check 0.02, model 1.10/0.98 CPU, ...".
    var line: String {
        let wall = Self.seconds(clock.now - start) + (beforeSetup ?? 0)
        let cpu = parts.reduce(0) { $0 + $1.cpu }
        var pieces = beforeSetup.map { [String(format: "process start to setup %.2f", $0)] } ?? []
        pieces += parts.map { String(format: "%@ %.2f (CPU %.2f)", $0.name, $0.wall, $0.cpu) }
        return String(format: "start-up: ready in %.2f s, setup CPU %.2f s: ", wall, cpu) + pieces.joined(separator: ", ")
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
    }

    /// Seconds since this process started: /proc/uptime minus field 22 of /proc/self/stat (clock ticks after boot).
    static func processAge() -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
              let uptimeText = try? String(contentsOfFile: "/proc/uptime", encoding: .utf8),
              let uptime = uptimeText.split(separator: " ").first.flatMap({ Double($0) }),
              let close = stat.lastIndex(of: ")")
        else { return nil }
        // Fields after the command name (which may hold spaces) start at field 3.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 19, let ticks = Double(fields[19]) else { return nil }
        let age = uptime - ticks / Double(sysconf(Int32(_SC_CLK_TCK)))
        return age >= 0 ? age : nil
    }
}
