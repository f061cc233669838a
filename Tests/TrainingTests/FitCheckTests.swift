import Foundation
import Llama
import TestSupport
import XCTest

@testable import Training

/// The fit check before loading: the refusal names the estimate, the memory available and
/// flags that would fit (each checked against the estimate it claims); `--force` starts anyway;
/// the available figure comes from MemAvailable / cgroup v1 or v2 / DPO_MEMORY_AVAILABLE_MB.
final class FitCheckTests: XCTestCase {
    func parameters(batchPairs: Int = 4, maxLength: Int = 512) -> TrainingParameters {
        var p = TrainingParameters()
        p.batchPairs = batchPairs
        p.maxLength = maxLength
        return p
    }

    func total(_ p: TrainingParameters, _ config: LlamaConfig, ranksOnHost: Int = 1, worldSize: Int = 1) -> Int {
        FitCheck.geometry(p, config: config, ranksOnHost: ranksOnHost, worldSize: worldSize).estimate().totalBytes
    }

    /// The integer after `flag ` in `text`.
    func value(after flag: String, in text: String) -> Int? {
        guard let range = text.range(of: flag + " ") else { return nil }
        return Int(text[range.upperBound...].prefix { $0.isNumber })
    }

    func testRefusalNamesEstimateAvailableMemoryAndFlagsThatFit() throws {
        let config = LlamaPreset.smollm2135m.config
        let p = parameters()
        var checkpointed = p
        checkpointed.gradientCheckpointing = true
        // Two ranks on the host: the shared reference counts half on each.
        let plain = total(p, config, ranksOnHost: 2), withCheckpointing = total(checkpointed, config, ranksOnHost: 2)
        XCTAssertLessThan(plain, total(p, config, ranksOnHost: 1))
        XCTAssertLessThan(withCheckpointing, plain)
        // Room for the checkpointed run, not for the plain one.
        let budget = withCheckpointing + (plain - withCheckpointing) / 4
        let verdict = FitCheck.Verdict(estimate: FitCheck.geometry(p, config: config, ranksOnHost: 2).estimate(),
                                       available: AvailableMemory(bytes: 2 * budget, source: AvailableMemory.environmentVariable),
                                       ranksOnHost: 2)
        XCTAssertFalse(verdict.fits)
        XCTAssertEqual(verdict.perRank, budget)
        let text = FitCheck.refusal(verdict, p, config: config, worldSize: 2)
        let b = ProgressStartupSummary.bytes
        XCTAssertTrue(text.contains("needs about \(b(plain)) per rank"), text)
        XCTAssertTrue(text.contains("but \(b(budget)) is available to each rank (DPO_MEMORY_AVAILABLE_MB \(b(2 * budget)) shared by 2 ranks"), text)
        XCTAssertTrue(text.contains("--gradient-checkpointing true (~\(b(withCheckpointing)))"), text)
        XCTAssertTrue(text.hasSuffix("Or add --force to start anyway."), text)
        // The largest --batch-pairs and --max-length offered fit, one more does not.
        for (flag, set) in [("--batch-pairs", { (q: inout TrainingParameters, v: Int) in q.batchPairs = v }),
                            ("--max-length", { (q: inout TrainingParameters, v: Int) in q.maxLength = v })] {
            let remedies = try XCTUnwrap(text.components(separatedBy: "Any of these would fit:").last)
            let offered = try XCTUnwrap(value(after: flag, in: remedies), "\(flag) not offered: \(text)")
            var q = p
            set(&q, offered)
            XCTAssertLessThanOrEqual(total(q, config, ranksOnHost: 2), budget, flag)
            set(&q, offered + 1)
            XCTAssertGreaterThan(total(q, config, ranksOnHost: 2), budget, flag)
        }
        // fp16 is offered exactly when it fits (on the refusal's 2 ranks: fp16 stages gradients between them).
        var half = p
        half.precision = .fp16
        XCTAssertEqual(text.contains("--precision fp16"), total(half, config, ranksOnHost: 2, worldSize: 2) <= budget, text)
    }

    /// Nothing but a combination fits: the switches are offered together, with a shorter --max-length.
    func testCombinationIsOfferedWhenNoFlagAloneFits() throws {
        let config = LlamaPreset.smollm2135m.config
        let p = parameters(batchPairs: 4, maxLength: 1024)
        var both = p
        both.gradientCheckpointing = true
        both.precision = .fp16
        both.maxLength = 128
        let budget = total(both, config) + 1
        // fp32 does not fit at any batch: no flag alone can help.
        XCTAssertGreaterThan(total(parameters(batchPairs: 1, maxLength: 2), config), budget)
        let verdict = FitCheck.Verdict(estimate: FitCheck.geometry(p, config: config).estimate(),
                                       available: AvailableMemory(bytes: budget, source: "MemAvailable"), ranksOnHost: 1)
        let text = FitCheck.refusal(verdict, p, config: config, worldSize: 1)
        let prefix = "--gradient-checkpointing true --precision fp16 --max-length"
        XCTAssertTrue(text.contains("Any of these would fit: " + prefix), text)
        let length = try XCTUnwrap(value(after: prefix, in: text), text)
        both.maxLength = length
        XCTAssertLessThanOrEqual(total(both, config), budget)
        both.maxLength = length + 1
        XCTAssertGreaterThan(total(both, config), budget)
        // Too little for anything.
        let hopeless = FitCheck.Verdict(estimate: verdict.estimate, available: AvailableMemory(bytes: 1 << 20, source: "MemAvailable"),
                                        ranksOnHost: 1)
        XCTAssertTrue(FitCheck.refusal(hopeless, p, config: config, worldSize: 1).contains("No combination of"))
    }

    func testAvailableMemoryReadsTheSmallestLimit() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("fit-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        let write = { (path: String, text: String) in try Self.write(text, at: path, under: root) }
        try write("proc/meminfo", "MemTotal:       24000000 kB\nMemFree:        100 kB\nMemAvailable:    8000000 kB\n")
        XCTAssertEqual(try AvailableMemory.current(environment: [:], root: root.path),
                       AvailableMemory(bytes: 8_000_000 * 1024, source: "MemAvailable"))
        try write("sys/fs/cgroup/memory.max", "max\n")
        try write("sys/fs/cgroup/memory.current", "1000\n")
        XCTAssertEqual(try AvailableMemory.current(environment: [:], root: root.path)?.source, "MemAvailable", "no v2 limit")
        try write("sys/fs/cgroup/memory.max", "4000000000\n")
        XCTAssertEqual(try AvailableMemory.current(environment: [:], root: root.path),
                       AvailableMemory(bytes: 4_000_000_000 - 1000, source: "cgroup v2 memory.max"))
        try write("sys/fs/cgroup/memory/memory.limit_in_bytes", "2000000000\n")
        try write("sys/fs/cgroup/memory/memory.usage_in_bytes", "500000000\n")
        XCTAssertEqual(try AvailableMemory.current(environment: [:], root: root.path),
                       AvailableMemory(bytes: 1_500_000_000, source: "cgroup v1 memory.limit_in_bytes"))
        XCTAssertEqual(try AvailableMemory.current(environment: ["DPO_MEMORY_AVAILABLE_MB": "512"], root: root.path),
                       AvailableMemory(bytes: 512 << 20, source: "DPO_MEMORY_AVAILABLE_MB"))
        XCTAssertThrowsError(try AvailableMemory.current(environment: ["DPO_MEMORY_AVAILABLE_MB": "lots"], root: root.path)) { error in
            XCTAssertTrue("\(error)".contains("DPO_MEMORY_AVAILABLE_MB=lots"), "\(error)")
        }
    }

    /// A limit on this process's own cgroup, below the root of /sys/fs/cgroup: a Slurm job's
    /// `--mem` (cgroup v2, no cgroup namespace: the root has no memory.max) and a v1 memory
    /// cgroup like this host's. Before, only the root's files were read, so the fit check passed
    /// a run that the job's limit then killed. The tightest level from the process's cgroup up wins.
    func testAvailableMemoryReadsTheLimitOfThisProcesssOwnCgroup() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("fit-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        let write = { (path: String, text: String) in try Self.write(text, at: path, under: root) }
        try write("proc/meminfo", "MemTotal:       24000000 kB\nMemAvailable:    8000000 kB\n")
        try write("proc/self/cgroup", "0::/system.slice/slurmstepd.scope/job_7/step_0\n")
        let job = "sys/fs/cgroup/system.slice/slurmstepd.scope/job_7"
        try write("\(job)/memory.max", "2000000000\n")
        try write("\(job)/memory.current", "300000000\n")
        try write("\(job)/step_0/memory.max", "max\n")
        try write("\(job)/step_0/memory.current", "100000000\n")
        XCTAssertEqual(try AvailableMemory.current(environment: [:], root: root.path),
                       AvailableMemory(bytes: 1_700_000_000, source: "cgroup v2 memory.max of /system.slice/slurmstepd.scope/job_7"))
        // The step's own limit, tighter, wins.
        try write("\(job)/step_0/memory.max", "1000000000\n")
        XCTAssertEqual(try AvailableMemory.current(environment: [:], root: root.path),
                       AvailableMemory(bytes: 900_000_000, source: "cgroup v2 memory.max of /system.slice/slurmstepd.scope/job_7/step_0"))

        // cgroup v1: the memory controller's line names the path (other controllers' lines are "/").
        try write("proc/self/cgroup", "4:memory:/process_api/abc\n3:cpuset:/\n0::/\n")
        try write("sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n")
        try write("sys/fs/cgroup/memory/memory.usage_in_bytes", "5000000000\n")
        try write("sys/fs/cgroup/memory/process_api/abc/memory.limit_in_bytes", "600000000\n")
        try write("sys/fs/cgroup/memory/process_api/abc/memory.usage_in_bytes", "200000000\n")
        XCTAssertEqual(try AvailableMemory.current(environment: [:], root: root.path),
                       AvailableMemory(bytes: 400_000_000, source: "cgroup v1 memory.limit_in_bytes of /process_api/abc"))
        // A path that is not under the mount (a container's own cgroup mounted as the root) leaves the root's figures.
        try write("proc/self/cgroup", "4:memory:/docker/0123\n")
        XCTAssertEqual(try AvailableMemory.current(environment: [:], root: root.path)?.source, "MemAvailable")
    }

    /// Writes `text` at `path` below `root` (a fake `/`: /proc and /sys files for `AvailableMemory`).
    static func write(_ text: String, at path: String, under root: URL) throws {
        let url = root.appendingPathComponent(path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try text.write(to: url, atomically: true, encoding: .utf8)
    }

    /// The real binary: refused before anything is written to OUT; `--force` trains anyway.
    func testTrainRefusesBeforeLoadingAndForceStartsAnyway() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("fit-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        let model = root.appendingPathComponent("model").path
        let initialized = try MPIJob.dpo(ranks: 1, ["init", "--preset", "tiny", "--out", model])
        XCTAssertEqual(initialized.status, 0, initialized.output)
        let record = #"{"prompt": "ab", "chosen": "cd", "rejected": "ef"}"#
        let data = root.appendingPathComponent("pairs.jsonl")
        try (record + "\n" + record.replacingOccurrences(of: "ab", with: "gh") + "\n").write(to: data, atomically: true, encoding: .utf8)
        let out = root.appendingPathComponent("out")
        let arguments = ["train", "--model", model, "--data", data.path, "--out", out.path, "--max-steps", "1", "--threads", "1"]
        let small = ["DPO_MEMORY_AVAILABLE_MB": "1"]
        let refused = try MPIJob.dpo(ranks: 1, arguments, extraEnvironment: small, timeout: 60)
        XCTAssertNotEqual(refused.status, 0, refused.output)
        XCTAssertTrue(refused.output.contains("memory: this run needs about"), refused.output)
        // Sized for the data's rows (a few tokens each), not for rows of --max-length.
        XCTAssertTrue(refused.output.contains("(the longest batch of the encoded data; --max-length 1024)"), refused.output)
        XCTAssertTrue(refused.output.contains("1.00 MiB is available to each rank (DPO_MEMORY_AVAILABLE_MB"), refused.output)
        XCTAssertTrue(refused.output.contains("--force"), refused.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent("train_config.json").path), "nothing written")
        let forced = try MPIJob.dpo(ranks: 1, arguments + ["--force"], extraEnvironment: small, timeout: 60)
        XCTAssertEqual(forced.status, 0, forced.output)
        XCTAssertTrue(forced.output.contains("starting anyway (--force)"), forced.output)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent("final").path), forced.output)
    }
}
