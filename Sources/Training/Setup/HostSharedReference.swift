import Distributed
import Foundation
import Llama

/// `--shared-reference true`: the ranks of one host run one frozen reference, mapped read-only
/// from a nameless shared-memory file that the host's first rank writes (`SharedWeights`); the
/// others open it through that rank's descriptor, whose address they learn from an all-gather,
/// taking the entry of that rank by its world rank (`Communicator.node.leader`), never by host
/// name: two machines reporting the same name must not look up each other's /proc/PID/fd/N.
/// Nothing has a name in /dev/shm at any moment, so no way a job ends (Ctrl-C during start-up,
/// a rank killed while the others map it) leaves memory behind, and jobs on one host cannot
/// collide. Any failure (memory short, /proc/PID/fd not openable) on any rank falls back to a
/// private reference on every rank, with a message.
public enum HostSharedReference {
    /// The shared reference model, or nil when the ranks of this host are alone (nothing to
    /// share) or sharing failed somewhere. Collective: every rank calls it.
    static func model(config: LlamaConfig, precision: Precision, weights: [Float], communicator: Communicator,
                      events: TrainingEvents) -> LlamaModel? {
        model(config: config, precision: precision, weights: weights, communicator: communicator, message: events.message)
    }

    /// The same, reporting through `message` (`dpo bench dpo --shared-reference true`).
    public static func model(config: LlamaConfig, precision: Precision, weights: [Float], communicator: Communicator,
                             message: (String) -> Void) -> LlamaModel? {
        guard communicator.node.size > 1 else { return nil }
        let creator = communicator.node.rank == 0
        var shared: SharedWeights?, problem: String?
        if creator {
            do { shared = try weights.withUnsafeBufferPointer { try SharedWeights.create(weights: $0, precision: precision) } } catch {
                problem = "\(error)"
            }
        }
        // Written (or not) everywhere before anyone opens.
        if communicator.anyRank(problem != nil) {
            shared?.closeDescriptor()
            message("reference: cannot share one copy per host (\(problem ?? "failed on another rank")); every rank loads its own")
            return nil
        }
        // Each host's first rank says where its file is; the others open the one of their host's first rank.
        let addresses = communicator.allGather(Array((creator ? shared!.address : "").utf8))
            .map { String(decoding: $0, as: UTF8.self) }
        if !creator {
            let leader = communicator.node.leader
            if addresses.indices.contains(leader), !addresses[leader].isEmpty {
                do { shared = try SharedWeights.open(address: addresses[leader], count: weights.count, precision: precision) } catch {
                    problem = "\(error)"
                }
            } else {
                problem = "rank \(leader), this host's first rank, did not create the shared reference"
            }
        }
        // Mapped everywhere: the creator's descriptor can go (the pages stay until the last mapping does).
        let failed = communicator.anyRank(problem != nil)
        if creator { shared?.closeDescriptor() }
        guard !failed, let shared else {
            message("reference: cannot share one copy per host (\(problem ?? "failed on another rank")); every rank loads its own")
            return nil
        }
        do {
            let model = try LlamaModel(config: config, precision: precision, trainable: false, sharedWeights: shared)
            message("reference: one \(precision.rawValue) copy per host, shared by \(communicator.node.size) ranks "
                           + "(\(ProgressStartupSummary.bytes(weights.count * (precision == .fp32 ? 4 : 2))) of shared memory)")
            return model
        } catch {
            return nil  // the shapes were checked when the weights loaded; unreachable in practice
        }
    }
}
