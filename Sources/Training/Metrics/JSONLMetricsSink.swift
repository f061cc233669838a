import Foundation

/// Writes `metrics.jsonl`: one JSON object per logged step, `{"step": N, "loss": ..., ...}`,
/// keys in the order the trainer logged them. Each line is written and handed to the OS at once.
///
/// Non-finite values (a diverged loss) are written as `null` so the file stays valid JSON;
/// the reader turns them back into NaN.
public final class JSONLMetricsSink: MetricsSink {
    public let url: URL
    private let file: AppendingFile

    /// Creates (or truncates) the file at `url`, creating its directory if needed; or, resuming,
    /// replaces it by its kept lines and appends after them.
    ///
    /// - Parameter keepingStepsThrough: when resuming from a checkpoint at this step, the lines
    ///   of an existing file with `step <= keepingStepsThrough` are kept (verbatim) and later
    ///   ones dropped, so the file continues where the checkpoint left off.
    public init(url: URL, keepingStepsThrough resumeStep: Int? = nil) throws {
        self.url = url
        guard let resumeStep, FileManager.default.fileExists(atPath: url.path) else {
            self.file = try AppendingFile(creating: url)
            return
        }
        var kept: [UInt8] = []
        let text = try String(decoding: Data(contentsOf: url), as: UTF8.self)
        for (index, line) in text.split(separator: "\n").enumerated()
        where !line.trimmingCharacters(in: .whitespaces).isEmpty {
            let record: MetricsLog.Record
            do { record = try MetricsLog.parseRecord(Array(line.utf8)) } catch let error as MetricsError {
                throw MetricsError("\(url.path):\(index + 1): \(error.message); move the file away to start a fresh log")
            }
            if record.step <= resumeStep { kept += Array(line.utf8) + [0x0A] }
        }
        // Replaced by one rename, never truncated and rewritten: a kill meanwhile (start-up ends at
        // once on Ctrl-C) leaves the old file whole, not empty or cut. The `.tmp-` name is one the
        // next run's start removes (CheckpointStore.recoverInterruptedSaves).
        let temporary = url.deletingLastPathComponent().appendingPathComponent(".tmp-\(url.lastPathComponent)-\(getpid())")
        do {
            try Data(kept).write(to: temporary)
            guard rename(temporary.path, url.path) == 0 else { throw MetricsError(String(cString: strerror(errno))) }
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            throw MetricsError("cannot rewrite \(url.path): \(error); check that the output directory is writable and not full")
        }
        self.file = try AppendingFile(appendingTo: url)
    }

    public func log(step: Int, metrics: [(name: String, value: Double)]) throws {
        try file.write(Array(Self.line(step: step, metrics: metrics).utf8))
    }

    public func close() throws { try file.close() }

    // MARK: - Formatting

    /// One JSONL line (with the trailing newline) for a step.
    public static func line(step: Int, metrics: [(name: String, value: Double)]) -> String {
        var text = "{\"step\": \(step)"
        for metric in metrics {
            text += ", " + jsonString(metric.name) + ": " + jsonNumber(metric.value)
        }
        return text + "}\n"
    }

    /// Shortest round-trippable decimal; `null` for NaN and infinities.
    static func jsonNumber(_ value: Double) -> String {
        guard value.isFinite else { return "null" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return "\(value)"
    }

    static func jsonString(_ text: String) -> String {
        var escaped = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": escaped += "\\\""
            case "\\": escaped += "\\\\"
            case "\n": escaped += "\\n"
            case "\r": escaped += "\\r"
            case "\t": escaped += "\\t"
            default:
                if scalar.value < 0x20 {
                    escaped += String(format: "\\u%04x", scalar.value)
                } else {
                    escaped.unicodeScalars.append(scalar)
                }
            }
        }
        return escaped + "\""
    }
}
