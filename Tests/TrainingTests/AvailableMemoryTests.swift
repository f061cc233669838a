import Foundation
import Llama
import XCTest

@testable import Training

/// `AvailableMemory.measured`, the one reading behind `dpo init`'s size check and the trainer's
/// fit check, on fake /proc and /sys roots (`FitCheckTests.write`): a limit on a nested cgroup
/// refuses `dpo init` too, and a cgroup's inactive page cache (reclaimed before an OOM kill) does
/// not count as used, while anonymous memory does.
final class AvailableMemoryTests: XCTestCase {
    var root: URL!

    override func setUpWithError() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("available-\(UUID().uuidString)")
        try write("proc/meminfo", "MemTotal:       24000000 kB\nMemAvailable:    8000000 kB\n")
    }

    override func tearDown() { try? FileManager.default.removeItem(at: root) }

    func write(_ path: String, _ text: String) throws { try FitCheckTests.write(text, at: path, under: root) }

    /// The 8 bytes per weight `dpo init` needs for the tiny preset.
    var tinyInitBytes: Int { LlamaPreset.tiny.config.parameterCountIfRepresentable! * 8 }

    /// A Slurm job's limit (cgroup v2 without a namespace: nothing on the root): before, `dpo init`
    /// read only the root's memory.max, so it passed what the job's limit then killed.
    func testInitRefusesUnderANestedCgroupLimit() throws {
        let job = "sys/fs/cgroup/system.slice/slurmstepd.scope/job_7"
        try write("proc/self/cgroup", "0::/system.slice/slurmstepd.scope/job_7/step_0\n")
        try write("\(job)/memory.max", "\(100_000_000 + tinyInitBytes / 2)\n")
        try write("\(job)/memory.current", "100000000\n")
        try write("\(job)/step_0/memory.max", "max\n")
        try write("\(job)/step_0/memory.current", "100000000\n")
        XCTAssertEqual(MemoryBudget.availableBytes(root: root.path), tinyInitBytes / 2)
        XCTAssertThrowsError(try ModelInit.checkMemory(LlamaPreset.tiny.config, root: root.path)) { error in
            XCTAssertTrue("\(error)".contains("of memory is available; use smaller sizes "
                + "(available per cgroup v2 memory.max of /system.slice/slurmstepd.scope/job_7)"), "\(error)")
        }
        // Room for it: accepted.
        try write("\(job)/memory.max", "\(100_000_000 + tinyInitBytes)\n")
        XCTAssertNoThrow(try ModelInit.checkMemory(LlamaPreset.tiny.config, root: root.path))

        // cgroup v1: the memory controller's own cgroup.
        try write("proc/self/cgroup", "4:memory:/process_api/abc\n0::/\n")
        try write("sys/fs/cgroup/memory/process_api/abc/memory.limit_in_bytes", "\(200_000_000 + tinyInitBytes - 1)\n")
        try write("sys/fs/cgroup/memory/process_api/abc/memory.usage_in_bytes", "200000000\n")
        XCTAssertThrowsError(try ModelInit.checkMemory(LlamaPreset.tiny.config, root: root.path)) { error in
            XCTAssertTrue("\(error)".contains("(available per cgroup v1 memory.limit_in_bytes of /process_api/abc)"), "\(error)")
        }
    }

    /// The fit check's verdict for a tiny run against the memory read below `root`, and its estimate.
    func verdict() throws -> (fits: Bool, estimate: Int, available: AvailableMemory) {
        var p = TrainingParameters()
        p.batchPairs = 1
        p.maxLength = 64
        let estimate = FitCheck.geometry(p, config: LlamaPreset.tiny.config).estimate()
        let available = try XCTUnwrap(try AvailableMemory.current(environment: [:], root: root.path))
        return (FitCheck.Verdict(estimate: estimate, available: available, ranksOnHost: 1).fits, estimate.totalBytes, available)
    }

    /// cgroup v2: memory.current near memory.max, but most of it inactive page cache (a dataset
    /// or checkpoint read): the working set (current - inactive_file) leaves room, the run fits.
    /// The same current made of anonymous memory is still refused.
    func testV2PageCacheDoesNotCountAsUsed() throws {
        let estimate = try verdict().estimate
        let job = "sys/fs/cgroup/job"
        try write("proc/self/cgroup", "0::/job\n")
        try write("\(job)/memory.max", "\(3 * estimate)\n")
        try write("\(job)/memory.current", "\(3 * estimate - estimate / 2)\n")
        try write("\(job)/memory.stat", "anon \(estimate / 2)\nfile \(2 * estimate)\nactive_file \(estimate / 4)\n"
            + "inactive_file \(2 * estimate - estimate / 4)\nanon_thp 0\n")
        var v = try verdict()
        XCTAssertTrue(v.fits, "\(v)")
        let workingSet = (3 * estimate - estimate / 2) - (2 * estimate - estimate / 4)
        XCTAssertEqual(v.available, AvailableMemory(bytes: 3 * estimate - workingSet, source: "cgroup v2 memory.max of /job"))
        // Anonymous memory: refused.
        try write("\(job)/memory.stat", "anon \(3 * estimate - estimate / 2)\nfile 0\nactive_file 0\ninactive_file 0\n")
        v = try verdict()
        XCTAssertFalse(v.fits, "\(v)")
        XCTAssertEqual(v.available, AvailableMemory(bytes: estimate / 2, source: "cgroup v2 memory.max of /job"))
        // More inactive cache than usage (the counters are read one after another): never below 0 used.
        try write("\(job)/memory.stat", "inactive_file \(4 * estimate)\n")
        XCTAssertEqual(try verdict().available.bytes, min(3 * estimate, 8_000_000 * 1024))
    }

    /// cgroup v1: usage_in_bytes minus total_inactive_file (the cgroup and its children, as usage
    /// counts them), falling back to inactive_file; without memory.stat, the old figure.
    func testV1PageCacheDoesNotCountAsUsed() throws {
        let estimate = try verdict().estimate
        let cgroup = "sys/fs/cgroup/memory/process_api/abc"
        try write("proc/self/cgroup", "4:memory:/process_api/abc\n0::/\n")
        try write("\(cgroup)/memory.limit_in_bytes", "\(2 * estimate)\n")
        try write("\(cgroup)/memory.usage_in_bytes", "\(2 * estimate - estimate / 4)\n")
        let source = "cgroup v1 memory.limit_in_bytes of /process_api/abc"
        var v = try verdict()
        XCTAssertFalse(v.fits, "no memory.stat: usage counts whole")
        XCTAssertEqual(v.available, AvailableMemory(bytes: estimate / 4, source: source))
        try write("\(cgroup)/memory.stat", "cache \(estimate)\nrss \(estimate / 2)\ninactive_file \(estimate / 2)\n"
            + "total_cache \(estimate + 5)\ntotal_inactive_file \(estimate)\n")
        v = try verdict()
        XCTAssertTrue(v.fits, "\(v)")
        XCTAssertEqual(v.available, AvailableMemory(bytes: estimate + estimate / 4, source: source))
        try write("\(cgroup)/memory.stat", "cache \(estimate)\ninactive_file \(estimate / 2)\n")
        XCTAssertEqual(try verdict().available, AvailableMemory(bytes: estimate / 2 + estimate / 4, source: source), "fallback: inactive_file")
        try write("\(cgroup)/memory.stat", "rss \(2 * estimate - estimate / 4)\ntotal_inactive_file 0\n")
        XCTAssertFalse(try verdict().fits, "anonymous memory: refused")
    }
}
