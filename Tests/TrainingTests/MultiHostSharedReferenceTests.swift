import Foundation
import TestSupport
import XCTest

@testable import Training

/// `--shared-reference` on hosts of two ranks that all report one host name.
extension MultiHostTrainingTests {
    /// 2 namespace hosts x 2 ranks, every host named "one-name" (DPO_NETNS_HOSTNAME): each host's
    /// ranks map the reference file of their own host's first rank. Before, a rank took the first
    /// all-gathered entry with its host name, so host 2's second rank mapped host 1's file (it
    /// opened, as the namespace hosts share /proc; between machines it would have failed).
    func testRanksOfHostsWithOneNameMapTheirOwnHostsReference() throws {
        let job = try TrainingJobSandbox()
        var files: [[String]]?
        let environment = ["DPO_NETNS_SLOTS": "2", "DPO_NETNS_HOSTNAME": "one-name",
                           FaultInjection.environmentVariable: "delay:step=1:ms=4000"]
        let outcome = try train(job, hosts: 2, out: "shared", ["--max-steps", "1", "--batch-pairs", "1", "--shared-reference", "true"],
                                environment: environment, timeout: 120) { output, _, hosts in
            // Printed after every rank has mapped its file; the ranks then wait in the step-1 delay.
            guard files == nil, let hosts, output.contains("reference: one fp32 copy per host, shared by 2 ranks") else { return }
            files = (1...2).map { Self.referenceFiles(in: hosts.host($0)) }
        }
        XCTAssertEqual(outcome.status, 0, outcome.output)
        let mapped = try XCTUnwrap(files, "the shared reference was never reported:\n\(outcome.output)")
        XCTAssertEqual(mapped.map(\.count), [2, 2], "two ranks of each host map a reference file: \(mapped)")
        XCTAssertEqual(Set(mapped[0]).count, 1, "host 1's ranks map one file: \(mapped)")
        XCTAssertEqual(Set(mapped[1]).count, 1, "host 2's ranks map one file: \(mapped)")
        XCTAssertTrue(Set(mapped[0]).isDisjoint(with: mapped[1]), "each host maps its own file: \(mapped)")
    }

    /// The inode of the shared reference file (`memfd:dpo-reference`) each `dpo` process of
    /// `namespace` maps, from /proc/PID/maps ("address perms offset device inode path").
    static func referenceFiles(in namespace: String) -> [String] {
        NamespaceCluster.processes(in: namespace).compactMap { pid -> String? in
            guard let name = try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8),
                  name.trimmingCharacters(in: .whitespacesAndNewlines) == "dpo",
                  let maps = procFile("/proc/\(pid)/maps"),
                  let line = maps.split(separator: "\n").first(where: { $0.contains("/memfd:dpo-reference") }) else { return nil }
            let fields = line.split(separator: " ")
            return fields.count > 4 ? String(fields[4]) : nil
        }
    }

    /// The whole of a /proc file (its size reads as 0, and `String(contentsOfFile:)` stops after
    /// the first 4 KiB of /proc/PID/maps); nil when it cannot be opened.
    static func procFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = [], chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            guard count > 0 else { break }
            bytes += chunk[..<count]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
