import Foundation

/// One run of the built `dpo` binary (`MPIJob.dpoBinary`) without MPI, its standard output and
/// standard error captured apart (the CLI tests look at each stream on its own).
public struct DPORun {
    public var status: Int32
    public var standardOutput: String
    public var standardError: String
    /// The signal that ended the process (nil when it exited); a shell reports 128 + this.
    public var signal: Int32?

    public static func run(_ arguments: [String]) throws -> DPORun {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try MPIJob.dpoBinary())
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return DPORun(status: process.terminationStatus, standardOutput: String(decoding: outData, as: UTF8.self),
                      standardError: String(decoding: errData, as: UTF8.self), signal: signal(of: process))
    }

    /// Runs `dpo` with `extraEnvironment`, sends it `signal` once its standard error holds
    /// `text` (what a user's Ctrl-C or `kill` does at that moment), and waits for it to end.
    /// A process still running `MPIJob.hangLimit` seconds after the start is killed (SIGKILL).
    public static func run(_ arguments: [String], extraEnvironment: [String: String] = [:], sending signal: Int32,
                           whenStandardErrorContains text: String) throws -> DPORun {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try MPIJob.dpoBinary())
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        for (key, value) in extraEnvironment { environment[key] = value }
        process.environment = environment
        let out = StreamCollector(), err = StreamCollector()
        process.standardOutput = out.pipe
        process.standardError = err.pipe
        let start = Date()
        try process.run()
        var sent = false
        while process.isRunning && Date().timeIntervalSince(start) < MPIJob.hangLimit {
            if !sent && err.text.contains(text) {
                kill(process.processIdentifier, signal)
                sent = true
            }
            usleep(10_000)
        }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        return DPORun(status: process.terminationStatus, standardOutput: out.finish(), standardError: err.finish(),
                      signal: Self.signal(of: process))
    }

    private static func signal(of process: Process) -> Int32? {
        process.terminationReason == .uncaughtSignal ? process.terminationStatus : nil
    }
}

/// A pipe whose bytes are collected as they arrive, readable while the process runs.
private final class StreamCollector: @unchecked Sendable {
    let pipe = Pipe()
    private let lock = NSLock()
    private var data = Data()

    init() {
        pipe.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let chunk = handle.availableData
            guard let self, !chunk.isEmpty else { return }
            self.lock.lock()
            self.data.append(chunk)
            self.lock.unlock()
        }
    }

    var text: String {
        lock.lock()
        defer { lock.unlock() }
        return String(decoding: data, as: UTF8.self)
    }

    /// Everything, once the process has ended (what the handler has not read yet included).
    func finish() -> String {
        pipe.fileHandleForReading.readabilityHandler = nil
        let rest = pipe.fileHandleForReading.readDataToEndOfFile()
        lock.lock()
        data.append(rest)
        lock.unlock()
        return text
    }
}
