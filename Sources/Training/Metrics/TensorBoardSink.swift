import Foundation

/// Writes TensorBoard scalars: one event file `events.out.tfevents.<unix time>.<host>` in
/// `directory` (normally `OUT/tensorboard/`), one event per logged step with one scalar per
/// metric, tags equal to the metric names. Each record is handed to the OS as it is written.
///
/// Open with `tensorboard --logdir OUT/tensorboard` (or a parent holding several runs).
/// A resumed run writes a new file next to the old one; TensorBoard reads both.
public final class TensorBoardSink: MetricsSink {
    public let fileURL: URL
    private let file: AppendingFile
    private let clock: () -> Double

    /// Creates the directory and the event file and writes the file-version event.
    /// - Parameters:
    ///   - clock: wall time in seconds since 1970 for each event (tests pass a fixed clock).
    ///   - hostName: the last part of the file name.
    public init(directory: URL,
                clock: @escaping () -> Double = { Date().timeIntervalSince1970 },
                hostName: String = ProcessInfo.processInfo.hostName) throws {
        self.clock = clock
        let now = clock()
        let safeHost = hostName.isEmpty ? "localhost" : hostName.replacingOccurrences(of: "/", with: "_")
        // Never overwrite an earlier file (a resumed run started in the same second): add a suffix.
        var candidate = directory.appendingPathComponent("events.out.tfevents.\(Int(now)).\(safeHost)")
        var suffix = 1
        while FileManager.default.fileExists(atPath: candidate.path) {
            candidate = directory.appendingPathComponent("events.out.tfevents.\(Int(now)).\(safeHost).\(suffix)")
            suffix += 1
        }
        fileURL = candidate
        file = try AppendingFile(creating: fileURL)
        try file.write(TensorBoardEvent.record(TensorBoardEvent.fileVersionEvent(wallTime: now)))
    }

    /// Writes one event; values are stored as float32 (`simple_value`), as TensorBoard does.
    public func log(step: Int, metrics: [(name: String, value: Double)]) throws {
        let scalars = metrics.map { (tag: $0.name, value: Float($0.value)) }
        let event = TensorBoardEvent.scalarsEvent(wallTime: clock(), step: step, scalars: scalars)
        try file.write(TensorBoardEvent.record(event))
    }

    public func close() throws { try file.close() }
}
