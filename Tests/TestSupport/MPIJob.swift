import Foundation

/// Running the built `dpo` binary as a child process, alone or on N ranks under `mpirun`,
/// for the multi-rank and fault tests of every test bundle.
///
/// The Open MPI settings a test needs (running as root, more ranks than cores, shared
/// memory only) go into the child's arguments and environment, never into this process's.
public enum MPIJob {
    /// How a child process ended.
    public struct Outcome {
        public var status: Int32
        /// Standard output and standard error, interleaved.
        public var output: String
        public var seconds: Double
        /// True when the test had to kill the process after its time limit.
        public var timedOut: Bool
    }

    /// What is missing to run a job.
    public enum SetupError: Error, CustomStringConvertible {
        case missing(String)
        public var description: String { if case .missing(let what) = self { return what }; return "" }
    }

    /// Directory of the test bundle (`.build/<triple>/<config>`), where `dpo` is built too.
    public static var buildDirectory: URL {
        URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
    }

    /// The package root (the directory above the build directory holding Package.swift).
    public static var packageRoot: URL? {
        var directory = buildDirectory
        while directory.path != "/" {
            if FileManager.default.fileExists(atPath: directory.appendingPathComponent("Package.swift").path) { return directory }
            directory.deleteLastPathComponent()
        }
        return nil
    }

    /// The `dpo` executable next to the test bundle.
    public static func dpoBinary() throws -> String {
        let path = buildDirectory.appendingPathComponent("dpo").path
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw SetupError.missing("the dpo binary is not built next to the tests (\(path)); build it with `swift build --build-tests` "
                + "(launch/test.sh does) to run the multi-rank tests")
        }
        return path
    }

    /// `mpirun` from PATH (or /usr/bin).
    public static func mpirun() throws -> String {
        for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":") + ["/usr/bin"] {
            let path = "\(directory)/mpirun"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        throw SetupError.missing("mpirun is not installed (Debian: apt-get install openmpi-bin); the multi-rank tests cannot run")
    }

    /// This process's environment plus what Open MPI needs to start as root.
    public static var environment: [String: String] {
        var environment = ProcessInfo.processInfo.environment
        environment["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
        environment["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
        return environment
    }

    /// Seconds after which a test kills a job as hung. Only a hung job reaches it: the test jobs
    /// take 2-6 s (2 ranks, at load 8 on the 2-core host), and every fault they inject ends the
    /// job by its own path (mpirun, MPI_Abort, the collective watchdog of `--collective-timeout`)
    /// or by a fallback that is slower than this limit (the watchdog's default, 300 s). It is
    /// not a speed requirement: a wall-clock limit near the jobs' own time flakes on a loaded
    /// host, so tests assert what ended the job (status, messages), not how long it took.
    public static let hangLimit: Double = 120

    /// Runs a process to completion (or kills it after `timeout` seconds), output merged.
    /// `whileRunning` is called every 50 ms with the output so far and the process.
    public static func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil, timeout: Double = hangLimit,
                           whileRunning: ((String, Process) -> Void)? = nil) throws -> Outcome {
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("mpijob-\(UUID().uuidString).log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: log) }
        let handle = try FileHandle(forWritingTo: log)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = environment ?? self.environment
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        let start = Date()
        try process.run()
        var timedOut = false
        while process.isRunning {
            if Date().timeIntervalSince(start) > timeout {
                // SIGTERM (twice: the launch script's second one reaches mpirun, which then
                // ends its ranks), SIGKILL if that is not enough.
                timedOut = true
                for _ in 0..<2 where process.isRunning {
                    kill(process.processIdentifier, SIGTERM)
                    Thread.sleep(forTimeInterval: 1.5)
                }
                if process.isRunning { kill(process.processIdentifier, SIGKILL) }
                break
            }
            whileRunning?((try? String(contentsOf: log, encoding: .utf8)) ?? "", process)
            Thread.sleep(forTimeInterval: 0.05)
        }
        process.waitUntilExit()
        try handle.close()
        let output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        return Outcome(status: process.terminationStatus, output: output, seconds: Date().timeIntervalSince(start), timedOut: timedOut)
    }

    /// The mpirun arguments that start `ranks` copies of `dpo` on this host: shared memory,
    /// no binding, oversubscription allowed, root allowed, and ranks that wait in MPI yield
    /// the core (a test machine runs other work; a spinning rank would slow the one computing);
    /// `exported` environment variables are passed to the ranks explicitly (`-x`).
    public static func mpirunArguments(ranks: Int, exported: [String] = []) throws -> [String] {
        ["-np", "\(ranks)", "--oversubscribe", "--mca", "btl", "self,vader", "--mca", "mpi_yield_when_idle", "1", "--bind-to", "none"]
            + (getuid() == 0 ? ["--allow-run-as-root"] : []) + exported.flatMap { ["-x", $0] } + [try dpoBinary()]
    }

    /// `dpo <arguments>` on `ranks` ranks under mpirun (1 rank: the binary alone, no MPI),
    /// with `extraEnvironment` set in the ranks.
    public static func dpo(ranks: Int, _ arguments: [String], extraEnvironment: [String: String] = [:], timeout: Double = hangLimit,
                           whileRunning: ((String, Process) -> Void)? = nil) throws -> Outcome {
        var environment = self.environment
        for (key, value) in extraEnvironment { environment[key] = value }
        if ranks == 1 {
            return try run(try dpoBinary(), arguments, environment: environment, timeout: timeout, whileRunning: whileRunning)
        }
        return try run(try mpirun(), try mpirunArguments(ranks: ranks, exported: extraEnvironment.keys.sorted()) + arguments,
                       environment: environment, timeout: timeout, whileRunning: whileRunning)
    }

    /// `mpirun -np 2 ...` of the `dpo` binary (the form the collective tests use).
    public static func mpirunTwoRanks(_ dpoArguments: [String]) throws -> Outcome {
        try dpo(ranks: 2, dpoArguments)
    }
}
