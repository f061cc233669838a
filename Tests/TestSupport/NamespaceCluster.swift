import Foundation

/// Jobs of the built `dpo` on several "hosts" made of Linux network namespaces
/// (launch/netns.sh), started through launch/cluster.sh over TCP only, for the multi-host tests.
///
/// Each call makes its own hosts (a fresh bridge, namespaces and subnet, removed when the
/// job ends), so a test that breaks a host cannot disturb the next one.
/// launch/test-multihost.sh sets `DPO_MULTIHOST=1` after checking that this machine can make
/// namespaces (root, `ip netns`); without it the tests skip.
public enum NamespaceCluster {
    public static let environmentVariable = "DPO_MULTIHOST"

    /// Why the multi-host tests cannot run here, nil when they can.
    public static var unavailableReason: String? {
        guard ProcessInfo.processInfo.environment[environmentVariable] == "1" else {
            return "\(environmentVariable) is not set: run launch/test-multihost.sh (root, network namespaces) for the multi-host tests"
        }
        guard MPIJob.packageRoot != nil else { return "package root not found above \(MPIJob.buildDirectory.path)" }
        return nil
    }

    /// What `whileRunning` learns about the hosts of a running job (from netns.sh's first line).
    public struct Hosts {
        /// The run's id: namespaces are `<id>-h1`..., links `<id>-v1`...
        public var id: String
        /// Host i (1-based), also its namespace's name.
        public func host(_ i: Int) -> String { "\(id)-h\(i)" }
        /// The bridge-side end of host i's link (deleting it disconnects the host).
        public func link(_ i: Int) -> String { "\(id)-v\(i)" }
    }

    /// Runs `dpo <arguments>` on `hosts` namespace hosts x 1 rank through launch/cluster.sh
    /// (`--btl tcp,self`, `--net` the hosts' subnet, 1 BLAS thread per rank), optionally with
    /// every link limited to `rate` (tc tbf, e.g. "100mbit"). `environment` entries are set in
    /// the launcher and reach the ranks only through cluster.sh's forwarding (the namespace
    /// agent starts each host with an empty environment, as ssh would). `whileRunning` gets the
    /// output so far, the launcher process (netns.sh, which passes signals on to cluster.sh)
    /// and the hosts once known. `dpoBinary` replaces the binary cluster.sh starts (DPO_BIN).
    public static func dpo(hosts: Int, _ arguments: [String], environment extra: [String: String] = [:], rate: String? = nil,
                           dpoBinary: String? = nil, timeout: Double = 60,
                           whileRunning: ((String, Process, Hosts?) -> Void)? = nil) throws -> MPIJob.Outcome {
        guard let root = MPIJob.packageRoot else { throw MPIJob.SetupError.missing("package root not found") }
        var environment = MPIJob.environment
        environment["DPO_BIN"] = try dpoBinary ?? MPIJob.dpoBinary()
        for (key, value) in extra { environment[key] = value }
        let launch = root.appendingPathComponent("launch")
        // bash -c receives the cluster.sh path as $0 and dpo's arguments as "$@" (no quoting needed).
        let script = #"exec ip netns exec "$DPO_NETNS_LAUNCHER" "$0" "$DPO_NETNS_HOSTFILE" --net "$DPO_NETNS_SUBNET" --btl tcp,self --threads 1 -- "$@""#
        let netns = [launch.appendingPathComponent("netns.sh").path, "run", "\(hosts)"] + (rate.map { ["--rate", $0] } ?? [])
        return try MPIJob.run("/bin/bash", netns + ["--", "/bin/bash", "-c", script, launch.appendingPathComponent("cluster.sh").path] + arguments,
                              environment: environment, timeout: timeout) { output, process in
            whileRunning?(output, process, hostsLine(output))
        }
    }

    /// The hosts named by netns.sh's "netns: run <id>: hosts ..." line, once printed.
    static func hostsLine(_ output: String) -> Hosts? {
        guard let range = output.range(of: "netns: run ") else { return nil }
        let id = output[range.upperBound...].prefix { $0 != ":" }
        return id.isEmpty || id.count == output[range.upperBound...].count ? nil : Hosts(id: String(id))
    }

    /// iproute2's `ip`.
    public static var ipCommand: String {
        ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"].first { FileManager.default.isExecutableFile(atPath: $0) } ?? "/usr/sbin/ip"
    }

    /// Runs a command to completion (ip, iptables), returning its status.
    @discardableResult
    public static func command(_ executable: String, _ arguments: [String]) -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        do { try process.run() } catch { return -1 }
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// The process ids inside host `namespace` (Open MPI's daemon and the ranks).
    public static func processes(in namespace: String) -> [Int32] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ipCommand)
        process.arguments = ["netns", "pids", namespace]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        do { try process.run() } catch { return [] }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self).split(whereSeparator: \.isWhitespace).compactMap { Int32($0) }
    }
}
