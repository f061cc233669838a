import Foundation
import Llama
import TestSupport
import XCTest

@testable import Training

/// The real trainer on several hosts: Linux network namespaces joined by a bridge, one rank
/// each, started through launch/cluster.sh with Open MPI's daemons entering each namespace
/// (launch/netns-rsh.sh) and TCP as the only transport between them. Run by
/// launch/test-multihost.sh (root); skipped elsewhere.
///
/// Covered: the same weights as one process (SGD fp32; AdamW with fp16 on the wire; 3
/// hosts), the start-up checks across hosts, the environment reaching remote ranks, a stop
/// on SIGTERM to cluster.sh and `--resume auto`, and a lost host (link deleted, processes
/// killed, network stalled, rank stopped) ending the job within 30 s, naming the host, with
/// the newest checkpoint complete.
final class MultiHostTrainingTests: XCTestCase {
    /// The exit status of a job stopped by a signal after its checkpoint (EX_TEMPFAIL, as
    /// `dpo train` documents it): neither success nor failure, so a requeue script resumes.
    static let stopStatus: Int32 = 75

    override func setUpWithError() throws {
        if let reason = NamespaceCluster.unavailableReason { throw XCTSkip(reason) }
    }

    /// `dpo train` of `job` on `hosts` namespace hosts.
    func train(_ job: TrainingJobSandbox, hosts: Int, out: String, _ extra: [String], environment: [String: String] = [:],
               dpoBinary: String? = nil, timeout: Double = 60,
               whileRunning: ((String, Process, NamespaceCluster.Hosts?) -> Void)? = nil) throws -> MPIJob.Outcome {
        try NamespaceCluster.dpo(hosts: hosts, job.trainArguments(out: out, extra), environment: environment, dpoBinary: dpoBinary,
                                 timeout: timeout, whileRunning: whileRunning)
    }

    @discardableResult
    func trainSucceeding(_ job: TrainingJobSandbox, hosts: Int, out: String, _ extra: [String], environment: [String: String] = [:],
                         file: StaticString = #filePath, line: UInt = #line) throws -> MPIJob.Outcome {
        let outcome = try train(job, hosts: hosts, out: out, extra, environment: environment)
        XCTAssertFalse(outcome.timedOut, "job timed out:\n\(outcome.output)", file: file, line: line)
        XCTAssertEqual(outcome.status, 0, "job failed:\n\(outcome.output)", file: file, line: line)
        return outcome
    }

    /// Per tensor, max |a - b| <= relative x max |weight| (the same-host bound of MultiRankTrainingTests).
    func assertTensorsClose(_ a: [String: [Float]], _ b: [String: [Float]], relative: Float, _ label: String,
                            file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(Set(a.keys), Set(b.keys), label, file: file, line: line)
        var worst: Float = 0
        for (name, x) in a {
            guard let y = b[name] else { continue }
            let scale = max(maxAbs(x), maxAbs(y))
            worst = max(worst, maxAbsDifference(x, y) / scale)
            XCTAssertLessThanOrEqual(maxAbsDifference(x, y), relative * scale, "\(label): \(name)", file: file, line: line)
        }
        print("\(label): largest per-tensor max|difference| / max|weight| = \(worst)")
    }

    // MARK: - Collectives over TCP

    /// Every collective dpo uses, between two hosts over TCP only: each rank is alone on its host.
    func testEveryCollectiveAcrossTwoHosts() throws {
        let outcome = try NamespaceCluster.dpo(hosts: 2, ["mpi-check"])
        XCTAssertEqual(outcome.status, 0, outcome.output)
        XCTAssertTrue(outcome.output.contains("ok  world: 2 rank(s); node rank 0 of 1"), "ranks share a host:\n\(outcome.output)")
        // Two hosts of one rank: each rank is its own host's first rank.
        XCTAssertTrue(outcome.output.contains("host leader of each rank: 0 1\n"), outcome.output)
        XCTAssertTrue(outcome.output.contains("all checks passed on 2 rank(s)"), outcome.output)
    }

    // MARK: - Equivalence with one process

    /// 2 hosts x 2 pairs against 1 process x 4 pairs, SGD fp32 (as the same-host test):
    /// the same loss curve and weights up to the summation order.
    func testTwoHostsMatchOneRankUnderSGD() throws {
        let job = try TrainingJobSandbox()
        let common = ["--optimizer", "sgd", "--lr", "0.5", "--epochs", "2", "--allreduce-dtype", "fp32"]
        try job.trainSucceeding(ranks: 1, out: "one", common + ["--batch-pairs", "4"])
        let two = try trainSucceeding(job, hosts: 2, out: "two", common + ["--batch-pairs", "2", "--bucket-mb", "0.01"])
        XCTAssertTrue(two.output.contains("global batch 4 pairs (2 x 1 x 2 ranks)"), two.output)
        XCTAssertEqual(try job.series("loss", "one").count, 4)
        for (x, y) in zip(try job.series("loss", "one"), try job.series("loss", "two")) {
            XCTAssertEqual(x, y, accuracy: 1e-5 * max(abs(x), 1e-3))
        }
        let one = try job.tensors("one"), initial = try job.initialTensors()
        XCTAssertGreaterThan(one.map { name, w in maxAbsDifference(w, initial[name]!) / maxAbs(w) }.min() ?? 0, 1e-3, "SGD moved every tensor")
        assertTensorsClose(one, try job.tensors("two"), relative: 1e-5, "SGD fp32, 2 hosts vs 1 rank")
    }

    /// AdamW, fp16 storage and fp16 gradients on the wire, 4 steps at lr 1e-3: within the
    /// half-precision bound of the same-host test (max |difference| <= 4 steps x 2 x lr, RMS
    /// difference under 1% of the RMS movement).
    func testTwoHostsWithFP16WireMatchOneRankUnderAdamW() throws {
        let job = try TrainingJobSandbox()
        let lr = 1e-3
        let common = ["--optimizer", "adamw", "--lr", "\(lr)", "--max-steps", "4", "--precision", "fp16", "--schedule", "constant"]
        try job.trainSucceeding(ranks: 1, out: "one", common + ["--batch-pairs", "4"])
        let two = try trainSucceeding(job, hosts: 2, out: "two", common + ["--batch-pairs", "2", "--allreduce-dtype", "fp16"])
        XCTAssertTrue(two.output.contains("all-reduce fp16"), two.output)
        let one = try job.masterWeights("one"), twoWeights = try job.masterWeights("two")
        let start = try ModelDirectory.load(job.sandbox.modelDirectory).weights
        func rms(_ a: [Float], _ b: [Float]) -> Double {
            (zip(a, b).reduce(0.0) { $0 + Double(($1.0 - $1.1) * ($1.0 - $1.1)) } / Double(a.count)).squareRoot()
        }
        let movement = rms(one, start), difference = rms(one, twoWeights)
        print("AdamW fp16 wire, 2 hosts vs 1 rank: max|difference| \(maxAbsDifference(one, twoWeights)) (bound \(8 * lr)), "
              + "RMS difference \(difference), RMS movement \(movement)")
        XCTAssertLessThanOrEqual(maxAbsDifference(one, twoWeights), Float(8 * lr))
        XCTAssertGreaterThan(movement, 1e-3, "AdamW moved the weights")
        XCTAssertLessThan(difference, 0.01 * movement)
    }

    /// 3 hosts x 1 pair against 1 process x 3 pairs (6 pairs, one epoch of 2 steps), SGD fp32.
    func testThreeHostsMatchOneRankUnderSGD() throws {
        let job = try TrainingJobSandbox(pairs: Array(TrainingJobSandbox.eightPairs.prefix(6)))
        let common = ["--optimizer", "sgd", "--lr", "0.5", "--epochs", "1", "--allreduce-dtype", "fp32"]
        try job.trainSucceeding(ranks: 1, out: "one", common + ["--batch-pairs", "3"])
        let three = try trainSucceeding(job, hosts: 3, out: "three", common + ["--batch-pairs", "1"])
        XCTAssertTrue(three.output.contains("global batch 3 pairs (1 x 1 x 3 ranks)"), three.output)
        XCTAssertEqual(try job.series("loss", "one").count, 2)
        assertTensorsClose(try job.tensors("one"), try job.tensors("three"), relative: 1e-5, "SGD fp32, 3 hosts vs 1 rank")
    }

    // MARK: - Start-up checks across hosts

    /// Host 2 runs another build of dpo, another --beta, or a stale copy of the data at the
    /// same path (a wrapper given as DPO_BIN swaps them on host 2 only): each is refused
    /// before any step, naming rank 1.
    func testAHostWithAnotherBinaryConfigurationOrDataIsRefused() throws {
        let job = try TrainingJobSandbox()
        let binary = try MPIJob.dpoBinary()
        let other = job.root.appendingPathComponent("dpo-other")
        var bytes = try Data(contentsOf: URL(fileURLWithPath: binary))
        bytes.append(0)
        try bytes.write(to: other)
        chmod(other.path, 0o755)
        let stale = try job.sandbox.writePairs("stale.jsonl", Array(TrainingJobSandbox.eightPairs.reversed()))
        let wrapper = job.root.appendingPathComponent("dpo-per-host.sh")
        try """
        #!/bin/bash
        # Host 2 (namespace *-h2) differs from the others in DPO_TEST_ODD.
        args=("$@")
        if [[ "$(hostname)" == *-h2 ]]; then
            case "$DPO_TEST_ODD" in
                binary) exec "$DPO_TEST_OTHER_BINARY" "$@" ;;
                beta) for i in "${!args[@]}"; do [ "${args[$i]}" = "--beta" ] && args[$((i + 1))]="$DPO_TEST_ODD_VALUE"; done ;;
                data)
                    # The same path with other contents (a stale copy on this host): the
                    # stale file mounted over the data file in a mount namespace of its own.
                    for i in "${!args[@]}"; do [ "${args[$i]}" = "--data" ] && data="${args[$((i + 1))]}"; done
                    exec unshare --mount --propagation private bash -c 'mount --bind "$1" "$2" && shift 2 && exec "$@"' \
                        stale-data "$DPO_TEST_ODD_VALUE" "$data" "$DPO_TEST_BINARY" "$@" ;;
            esac
        fi
        exec "$DPO_TEST_BINARY" "${args[@]}"
        """.write(to: wrapper, atomically: true, encoding: .utf8)
        chmod(wrapper.path, 0o755)

        let cases = [("binary", "", "rank(s) 1 run a different binary than rank 0"),
                     ("beta", "0.2", "rank(s) 1 run a different configuration (--beta) than rank 0"),
                     ("data", stale.path, "rank(s) 1 run a different training data (--data as encoded) than rank 0")]
        for (odd, value, expected) in cases {
            let environment = ["DPO_TEST_ODD": odd, "DPO_TEST_ODD_VALUE": value, "DPO_TEST_BINARY": binary,
                               "DPO_TEST_OTHER_BINARY": other.path]
            let outcome = try train(job, hosts: 2, out: "odd-\(odd)", ["--batch-pairs", "2", "--max-steps", "2", "--beta", "0.1"],
                                    environment: environment, dpoBinary: wrapper.path)
            XCTAssertFalse(outcome.timedOut, outcome.output)
            XCTAssertNotEqual(outcome.status, 0, "\(odd): the job should have been refused:\n\(outcome.output)")
            XCTAssertTrue(outcome.output.contains(expected), "\(odd): missing '\(expected)' in:\n\(outcome.output)")
            XCTAssertFalse(outcome.output.contains("step 1/"), "\(odd): no step may run:\n\(outcome.output)")
        }
    }

    // MARK: - Environment, stopping and resuming

    /// DPO_FAULT_INJECT set for cluster.sh asks for a stop on rank 1 (host 2) only: it reaches
    /// that rank only through cluster.sh's forwarding (the hosts start with an empty
    /// environment). The stopped run, continued with `--resume auto`, ends bit-identical to
    /// a straight run on the two hosts.
    func testEnvironmentReachesRemoteRanksAndResumeAutoContinues() throws {
        let job = try TrainingJobSandbox()
        let common = ["--lr", "1e-3", "--batch-pairs", "2", "--max-steps", "6", "--save-every", "3", "--keep-checkpoints", "0"]
        try trainSucceeding(job, hosts: 2, out: "straight", common)
        let stopped = try train(job, hosts: 2, out: "auto", common, environment: [FaultInjection.environmentVariable: "stop:rank=1:step=3"])
        XCTAssertEqual(stopped.status, Self.stopStatus, stopped.output)
        XCTAssertTrue(stopped.output.contains("stopped at step 3/6 on request"), "host 2 never saw DPO_FAULT_INJECT:\n\(stopped.output)")
        let resumed = try trainSucceeding(job, hosts: 2, out: "auto", common + ["--resume", "auto"])
        XCTAssertTrue(resumed.output.contains("at step 3"), resumed.output)
        XCTAssertEqual(try job.masterWeights("auto"), try job.masterWeights("straight"), "bit-identical after the resume")
        XCTAssertEqual(withoutTiming(try job.metrics("auto")), withoutTiming(try job.metrics("straight")))
    }

    /// SIGTERM to the launcher (netns.sh passes it to cluster.sh, which turns it into SIGUSR1
    /// for mpirun and so for the ranks on both hosts): the step in progress finishes, rank 0
    /// saves, the job exits with the documented stop status, and `--resume auto` finishes the run.
    func testSigtermToClusterShCheckpointsAndStops() throws {
        let job = try TrainingJobSandbox()
        let arguments = ["--batch-pairs", "2", "--max-steps", "40", "--lr", "1e-3"]
        var signalled = false
        let outcome = try train(job, hosts: 2, out: "signal", arguments, environment: [FaultInjection.environmentVariable: "delay:ms=300"]) {
            output, process, _ in
            if !signalled && output.contains("step 2/40") {
                signalled = true
                kill(process.processIdentifier, SIGTERM)
            }
        }
        XCTAssertTrue(signalled, "the job never reached step 2:\n\(outcome.output)")
        XCTAssertFalse(outcome.timedOut, outcome.output)
        XCTAssertTrue(outcome.output.contains("launch: stop requested"), outcome.output)
        XCTAssertEqual(outcome.status, Self.stopStatus, outcome.output)
        let stoppedAt = outcome.output.components(separatedBy: "stopped at step ").dropFirst().first?.prefix { $0.isNumber }
        let step = try XCTUnwrap(stoppedAt.flatMap { Int($0) }, "no 'stopped at step' in:\n\(outcome.output)")
        XCTAssertLessThan(step, 40)
        XCTAssertEqual(try CheckpointStore.verify(job.out("signal").appendingPathComponent("checkpoint-\(step)")).step, step)
        let resumed = try trainSucceeding(job, hosts: 2, out: "signal", arguments + ["--resume", "auto"])
        XCTAssertTrue(resumed.output.contains("at step \(step)"), resumed.output)
        XCTAssertEqual(try job.metrics("signal").map { Int($0["step"]!) }, Array(1...40), "metrics.jsonl continues without a gap")
    }

    // MARK: - A lost host

    /// Trains on 2 hosts (300 ms steps, a checkpoint every step), breaks host 2 with `fault`
    /// once step 3 is logged, and checks that the job ended within 30 s of the fault, saying
    /// which host (or rank on it) was lost, with the newest checkpoint complete.
    func loseHost(_ label: String, extra: [String] = [], fault: @escaping (NamespaceCluster.Hosts) -> Void,
                  file: StaticString = #filePath, line: UInt = #line) throws -> MPIJob.Outcome {
        let job = try TrainingJobSandbox()
        var faultTime: Date?
        var lostHost = ""
        let outcome = try train(job, hosts: 2, out: "lost", ["--batch-pairs", "2", "--max-steps", "400", "--save-every", "1", "--lr", "1e-3"] + extra,
                                environment: [FaultInjection.environmentVariable: "delay:ms=300"], timeout: 120) { output, _, hosts in
            if faultTime == nil, let hosts, output.contains("step 3/400") {
                lostHost = hosts.host(2)
                fault(hosts)
                faultTime = Date()
            }
        }
        let seconds = faultTime.map { Date().timeIntervalSince($0) } ?? .infinity
        print("\(label): the job ended \(String(format: "%.1f", seconds)) s after the fault, exit status \(outcome.status)")
        XCTAssertNotNil(faultTime, "\(label): the job never reached step 3:\n\(outcome.output)", file: file, line: line)
        XCTAssertFalse(outcome.timedOut, "\(label): the job hung:\n\(outcome.output)", file: file, line: line)
        XCTAssertNotEqual(outcome.status, 0, "\(label): the job should have failed:\n\(outcome.output)", file: file, line: line)
        XCTAssertLessThan(seconds, 30, "\(label):\n\(outcome.output)", file: file, line: line)
        XCTAssertTrue(outcome.output.contains(lostHost), "\(label): the lost host \(lostHost) is not named:\n\(outcome.output)", file: file, line: line)
        var skipped: [String] = []
        let newest = CheckpointStore(outputDirectory: job.out("lost")).newestComplete(skipped: &skipped)
        XCTAssertEqual(skipped, [], "\(label): incomplete checkpoints", file: file, line: line)
        let checkpoint = try XCTUnwrap(newest, "\(label): no complete checkpoint", file: file, line: line)
        XCTAssertGreaterThanOrEqual(checkpoint.manifest.step, 2, file: file, line: line)
        XCTAssertNoThrow(try CheckpointStore.verify(checkpoint.url), file: file, line: line)
        return outcome
    }

    /// Host 2's link deleted mid-run (as a pulled cable or a powered-off switch port): nothing
    /// tells host 1, so Open MPI's daemon keepalives (cluster.sh: 10 s idle, 3 probes 2 s apart) find out.
    func testDeletedLinkEndsTheJobNamingTheLostHost() throws {
        let outcome = try loseHost("link deleted") { hosts in
            XCTAssertEqual(NamespaceCluster.command(NamespaceCluster.ipCommand, ["link", "del", hosts.link(2)]), 0, "ip link del \(hosts.link(2))")
        }
        XCTAssertTrue(outcome.output.contains("lost communication") || outcome.output.contains("collective"), outcome.output)
    }

    /// Every process of host 2 killed (as a crashed machine whose kernel still resets connections).
    func testKilledHostEndsTheJobNamingTheLostHost() throws {
        _ = try loseHost("processes killed") { hosts in
            for pid in NamespaceCluster.processes(in: hosts.host(2)) { kill(pid, SIGKILL) }
        }
    }

    /// Host 2 stalled: its link stays up but every packet in or out is dropped (iptables in
    /// its namespace). Open MPI's daemon keepalives find the silent host, as for a deleted
    /// link. (The collective watchdog's default of 300 s stays above their ~16 s on purpose:
    /// once a rank has ended the job, mpirun waits for the stalled host's daemon to confirm,
    /// and a connection with unacknowledged data is no longer probed by keepalives.)
    func testStalledNetworkEndsTheJobNamingTheLostHost() throws {
        let outcome = try loseHost("network stalled") { hosts in
            for chain in ["INPUT", "OUTPUT"] {
                let status = NamespaceCluster.command(
                    NamespaceCluster.ipCommand, ["netns", "exec", hosts.host(2), "iptables", "-A", chain, "-j", "DROP"])
                XCTAssertEqual(status, 0, "iptables -A \(chain) -j DROP failed in \(hosts.host(2)): no packet filter in this kernel?")
            }
        }
        XCTAssertTrue(outcome.output.contains("lost communication"), outcome.output)
    }

    /// Host 2 reachable but its rank stopped (SIGSTOP: a rank stuck in a driver, swapping, or
    /// deadlocked): the daemons see nothing wrong, so only the collective watchdog ends the
    /// job: rank 0 names the collective, the step and the rank it waits for, and the job
    /// exits 76 after --collective-timeout (5 s here).
    func testStoppedRankEndsTheJobThroughTheCollectiveWatchdog() throws {
        let outcome = try loseHost("rank stopped", extra: ["--collective-timeout", "5"]) { hosts in
            for pid in NamespaceCluster.processes(in: hosts.host(2)) {
                let name = (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8)) ?? ""
                if name.hasPrefix("dpo") { kill(pid, SIGSTOP) }
            }
        }
        XCTAssertEqual(outcome.status, 76, outcome.output)
        XCTAssertTrue(outcome.output.contains("has not completed after"), outcome.output)
        XCTAssertTrue(outcome.output.contains("it waits for rank 1 (host"), outcome.output)
    }
}
