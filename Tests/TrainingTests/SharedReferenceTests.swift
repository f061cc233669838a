import Foundation
import Llama
import TestSupport
import XCTest

@testable import Training

/// `--shared-reference` on 2 ranks of one host: one copy of the reference in shared memory
/// gives the same run, bit for bit, as private references; nothing is left in /dev/shm, also
/// when a rank is killed, and the job never names a file there at all.
final class SharedReferenceTests: XCTestCase {
    /// Where the reference used to be named (`dpo-reference-<host>-<rank 0 pid>-<precision>`).
    static let directory = "/dev/shm", namePrefix = "dpo-reference-"

    func leftovers() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: Self.directory).filter { $0.hasPrefix(Self.namePrefix) }
    }

    func testSharedReferenceRunIsBitIdenticalToPrivateReferences() throws {
        let before = try leftovers()
        let job = try TrainingJobSandbox()
        for precision in ["fp32", "fp16"] {
            let common = ["--lr", "1e-3", "--max-steps", "3", "--batch-pairs", "2", "--precision", precision]
            let shared = try job.trainSucceeding(ranks: 2, out: "shared-\(precision)", common + ["--shared-reference", "true"])
            XCTAssertTrue(shared.output.contains("reference: one \(precision) copy per host, shared by 2 ranks"), shared.output)
            let own = try job.trainSucceeding(ranks: 2, out: "private-\(precision)", common + ["--shared-reference", "false"])
            XCTAssertFalse(own.output.contains("shared by 2 ranks"), own.output)
            // The rewards are beta x (policy - reference) log-probs: equal series mean equal reference log-probs.
            for name in ["rewards/chosen", "rewards/rejected", "loss"] {
                let a = try job.series(name, "shared-\(precision)"), b = try job.series(name, "private-\(precision)")
                XCTAssertEqual(a.count, 3, name)
                XCTAssertEqual(a, b, "\(precision) \(name)")
            }
            XCTAssertNotEqual(try job.series("rewards/chosen", "shared-\(precision)").last, 0)
            XCTAssertEqual(try job.masterWeights("shared-\(precision)").map(\.bitPattern), try job.masterWeights("private-\(precision)").map(\.bitPattern))
        }
        XCTAssertEqual(try leftovers(), before, "nothing left in \(Self.directory)")
    }

    func testKilledRankLeavesNothingInDevShm() throws {
        let before = try leftovers()
        let job = try TrainingJobSandbox()
        let outcome = try job.train(ranks: 2, out: "killed", ["--max-steps", "4", "--batch-pairs", "2"], faults: "kill:rank=1:step=2")
        XCTAssertNotEqual(outcome.status, 0, outcome.output)
        XCTAssertTrue(outcome.output.contains("shared by 2 ranks"), outcome.output)
        XCTAssertEqual(try leftovers(), before, "nothing left in \(Self.directory):\n\(outcome.output)")
    }

    /// A reference file with a name in /dev/shm (as before) could outlive its job: the name was
    /// removed only once every rank had mapped it, so Ctrl-C during start-up (local.sh sends
    /// SIGUSR1 to every rank, which then ends at once) or a rank killed in between left the
    /// whole reference there (538 MB for smollm2-135m in fp32, seen by hand), in memory until
    /// reboot. Now the file never has a name: inotify sees no file of this job's ranks created
    /// in /dev/shm during a whole shared-reference run (other jobs on the host are ignored).
    func testASharedReferenceNeverHasANameInDevShm() throws {
        let watch = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        XCTAssertGreaterThanOrEqual(watch, 0)
        defer { close(watch) }
        XCTAssertGreaterThanOrEqual(inotify_add_watch(watch, Self.directory, UInt32(IN_CREATE)), 0)
        let job = try TrainingJobSandbox()
        var ranks = Set<Int32>()
        let outcome = try MPIJob.dpo(ranks: 2, job.trainArguments(out: "run", ["--max-steps", "2", "--shared-reference", "true"])) { _, mpirun in
            ranks.formUnion(Self.children(of: mpirun.processIdentifier))
        }
        XCTAssertEqual(outcome.status, 0, outcome.output)
        XCTAssertTrue(outcome.output.contains("shared by 2 ranks"), outcome.output)
        XCTAssertEqual(ranks.count, 2, "the ranks were seen")
        let named = Self.createdNames(watch).filter { name in
            name.hasPrefix(Self.namePrefix) && ranks.contains { name.contains("-\($0)-") }
        }
        XCTAssertEqual(named, [], "the job named its reference in \(Self.directory)")
    }

    /// Processes whose parent is `parent` (from /proc/PID/stat).
    static func children(of parent: Int32) -> [Int32] {
        let pids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc"))?.compactMap { Int32($0) } ?? []
        return pids.filter { pid in
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return false }
            // "pid (comm) state ppid ...": the comm may hold spaces, so split after its ")".
            return stat[stat.index(after: close)...].split(separator: " ").dropFirst().first.flatMap { Int32($0) } == parent
        }
    }

    /// The names of the IN_CREATE events queued on `watch`.
    static func createdNames(_ watch: Int32) -> [String] {
        var names: [String] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(watch, $0.baseAddress, $0.count) }
            guard count > 0 else { return names }
            var offset = 0
            buffer.withUnsafeBytes { raw in
                while offset + MemoryLayout<inotify_event>.size <= count {
                    let event = raw.loadUnaligned(fromByteOffset: offset, as: inotify_event.self)
                    let start = offset + MemoryLayout<inotify_event>.size
                    let name = raw[start..<(start + Int(event.len))].prefix { $0 != 0 }
                    names.append(String(decoding: name, as: UTF8.self))
                    offset = start + Int(event.len)
                }
            }
        }
    }
}
