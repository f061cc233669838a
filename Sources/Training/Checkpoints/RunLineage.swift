import Foundation

/// One line of descent of checkpoints in an output directory.
///
/// Resuming from a checkpoint older than the newest one in OUT starts a new line: the newer
/// checkpoints (and `final/`) belong to the abandoned continuation. Left in place, `--resume
/// auto` would later pick one of them over the new run's own checkpoints, and rotation would
/// delete the new run's checkpoints while keeping the stale, higher-numbered ones. So they,
/// and the metrics lines logged past the resume step, are moved into
/// `OUT/abandoned-<UTC time>/`; afterwards every checkpoint left in OUT is of the current
/// line, which is all `auto` and rotation look at.
public enum RunLineage {
    public static let abandonedPrefix = "abandoned-"
    public static let metricsFileName = "metrics.jsonl"

    /// Moves what descends from a run abandoned at `resumeStep` out of `outputDirectory`:
    /// `checkpoint-<s>` with s > resumeStep, `final/` if its step is > resumeStep (or unreadable),
    /// and the lines of `metrics.jsonl` past `resumeStep` (copied; the metrics sink drops them
    /// from the live file). Returns one message per action; nothing when OUT has nothing newer.
    /// `resumeDirectory` itself is never moved.
    @discardableResult
    public static func setAsideNewer(than resumeStep: Int, resumeDirectory: URL, outputDirectory: URL, now: Date = Date()) throws -> [String] {
        let store = CheckpointStore(outputDirectory: outputDirectory)
        let resumePath = resumeDirectory.standardizedFileURL.path
        var newer = store.checkpointSteps().filter { $0 > resumeStep }.sorted().map { CheckpointStore.checkpointName(step: $0) }
        let finalURL = outputDirectory.appendingPathComponent(CheckpointStore.finalName)
        if FileManager.default.fileExists(atPath: finalURL.path) && finalStep(finalURL).map({ $0 > resumeStep }) ?? true {
            newer.append(CheckpointStore.finalName)
        }
        newer.removeAll { outputDirectory.appendingPathComponent($0).standardizedFileURL.path == resumePath }
        guard !newer.isEmpty else { return [] }

        let aside = try makeAsideDirectory(in: outputDirectory, now: now)
        do {
            for name in newer {
                try FileManager.default.moveItem(at: outputDirectory.appendingPathComponent(name), to: aside.appendingPathComponent(name))
            }
            let metricsLines = try copyMetricsLines(after: resumeStep, from: outputDirectory.appendingPathComponent(metricsFileName),
                                                    to: aside.appendingPathComponent(metricsFileName))
            return ["resuming from step \(resumeStep), older than \(newer.joined(separator: ", ")) of an abandoned continuation: moved "
                + (metricsLines > 0 ? "them and \(metricsLines) metrics line(s) past step \(resumeStep)" : "them")
                + " to \(aside.path) (--resume auto and --keep-checkpoints now see only this run's line)"]
        } catch {
            throw TrainingError.output("cannot move the abandoned run's checkpoints into \(aside.path): \(error.localizedDescription)")
        }
    }

    /// The step in `final/manifest.json`, nil if unreadable.
    static func finalStep(_ finalURL: URL) -> Int? {
        guard let data = FileManager.default.contents(atPath: finalURL.appendingPathComponent(CheckpointStore.manifestName).path) else { return nil }
        return try? JSONDecoder().decode(CheckpointManifest.self, from: data).step
    }

    /// `OUT/abandoned-<yyyyMMdd-HHmmss>` (UTC), with `-2`, `-3`... when taken.
    static func makeAsideDirectory(in outputDirectory: URL, now: Date) throws -> URL {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd-HHmmss"
        let base = abandonedPrefix + formatter.string(from: now)
        var candidate = outputDirectory.appendingPathComponent(base)
        var suffix = 2
        while FileManager.default.fileExists(atPath: candidate.path) {
            candidate = outputDirectory.appendingPathComponent("\(base)-\(suffix)")
            suffix += 1
        }
        do { try FileManager.default.createDirectory(at: candidate, withIntermediateDirectories: false) } catch {
            throw TrainingError.output("cannot create \(candidate.path): \(error.localizedDescription)")
        }
        return candidate
    }

    /// Writes the lines of `source` whose step is past `step` to `destination`; returns how many.
    static func copyMetricsLines(after step: Int, from source: URL, to destination: URL) throws -> Int {
        guard let data = FileManager.default.contents(atPath: source.path) else { return 0 }
        var kept: [Substring] = []
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
            if let record = try? MetricsLog.parseRecord(Array(line.utf8)), record.step > step { kept.append(line) }
        }
        guard !kept.isEmpty else { return 0 }
        try Data((kept.joined(separator: "\n") + "\n").utf8).write(to: destination)
        return kept.count
    }
}
