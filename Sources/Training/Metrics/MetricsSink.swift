import Foundation

// MARK: - Protocol

/// Receives the metrics of each logged training step.
///
/// Metric names follow TRL (docs/ARCHITECTURE.md, Conventions): `loss`, `rewards/chosen`, `rewards/rejected`,
/// `rewards/accuracies`, `rewards/margins`, `logps/chosen`, ..., eval ones prefixed `eval_`.
/// Only rank 0 owns sinks.
public protocol MetricsSink: AnyObject {
    /// One logged step; `metrics` in a stable order, names as in docs/ARCHITECTURE.md, Conventions ("loss", "rewards/chosen", ...,
    /// eval ones prefixed "eval_").
    func log(step: Int, metrics: [(name: String, value: Double)]) throws
    func close() throws
}

// MARK: - Errors

/// Why a metrics sink or reader failed; the message names the file and what to do.
public struct MetricsError: Error, LocalizedError, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
    public var errorDescription: String? { message }
}

// MARK: - Fan-out

/// Forwards every call to several sinks (e.g. JSONL + TensorBoard), in order.
///
/// Every sink sees every step even if an earlier one throws; the first error is rethrown afterwards.
public final class FanOutMetricsSink: MetricsSink {
    public let sinks: [MetricsSink]

    public init(_ sinks: [MetricsSink]) { self.sinks = sinks }

    public func log(step: Int, metrics: [(name: String, value: Double)]) throws {
        var firstError: Error?
        for sink in sinks {
            do { try sink.log(step: step, metrics: metrics) } catch { firstError = firstError ?? error }
        }
        if let firstError { throw firstError }
    }

    public func close() throws {
        var firstError: Error?
        for sink in sinks {
            do { try sink.close() } catch { firstError = firstError ?? error }
        }
        if let firstError { throw firstError }
    }
}

// MARK: - Standard output directory

extension FanOutMetricsSink {
    /// The sinks a training run writes into its output directory:
    /// `OUT/metrics.jsonl` and `OUT/tensorboard/events.out.tfevents.<time>.<host>`.
    /// - Parameter resumingFromStep: the checkpoint step a resumed run continues from; the
    ///   existing `metrics.jsonl` keeps its lines up to that step. Nil for a fresh run.
    public static func standard(outputDirectory: URL, resumingFromStep: Int? = nil) throws -> FanOutMetricsSink {
        let jsonl = try JSONLMetricsSink(url: outputDirectory.appendingPathComponent("metrics.jsonl"),
                                         keepingStepsThrough: resumingFromStep)
        let tensorBoard = try TensorBoardSink(directory: outputDirectory.appendingPathComponent("tensorboard"))
        return FanOutMetricsSink([jsonl, tensorBoard])
    }
}

// MARK: - Appending to a file

/// A write-only file handle that appends and flushes every write to the OS, so a crash loses
/// nothing already logged.
final class AppendingFile {
    let url: URL
    private var handle: FileHandle?

    /// Creates (truncating) the file, creating parent directories as needed.
    init(creating url: URL) throws {
        self.url = url
        let directory = url.deletingLastPathComponent()
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        } catch {
            throw MetricsError("cannot create directory \(directory.path): \(error.localizedDescription); check that the output path is writable")
        }
        guard FileManager.default.createFile(atPath: url.path, contents: nil) else {
            throw MetricsError("cannot create \(url.path); check that the output directory is writable and not full")
        }
        do {
            handle = try FileHandle(forWritingTo: url)
        } catch {
            throw MetricsError("cannot open \(url.path) for writing: \(error.localizedDescription)")
        }
    }

    /// Opens an existing file to append to its end.
    init(appendingTo url: URL) throws {
        self.url = url
        do {
            let handle = try FileHandle(forWritingTo: url)
            try handle.seekToEnd()
            self.handle = handle
        } catch {
            throw MetricsError("cannot open \(url.path) for writing: \(error.localizedDescription)")
        }
    }

    func write(_ bytes: [UInt8]) throws {
        guard let handle else { throw MetricsError("\(url.path) was already closed; log before close()") }
        do {
            try handle.write(contentsOf: Data(bytes))
        } catch {
            throw MetricsError("cannot write \(url.path): \(error.localizedDescription); is the disk full?")
        }
    }

    func close() throws {
        guard let handle else { return }
        self.handle = nil
        do { try handle.close() } catch {
            throw MetricsError("cannot close \(url.path): \(error.localizedDescription)")
        }
    }

    deinit { try? handle?.close() }
}
