import Distributed
import Foundation
import Llama

/// `--shared-reference true`: the ranks of one host run one frozen reference, mapped read-only
/// from a file in /dev/shm that the host's first rank writes (`SharedWeights`). Its name is
/// removed as soon as every rank of the host has mapped it, so a rank killed later leaves
/// nothing behind. Any failure (no /dev/shm, a full one, a name taken) on any rank falls back
/// to a private reference on every rank, with a message.
public enum HostSharedReference {
    static let directory = "/dev/shm"
    static let namePrefix = "dpo-reference-"

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
        // One name per job and host: rank 0's pid (the same on every rank) and this host's name.
        let job = Int(communicator.sum([communicator.rank == 0 ? Double(getpid()) : 0])[0])
        let host = ProcessInfo.processInfo.hostName.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "." ? $0 : "_" }
        let path = "\(directory)/\(namePrefix)\(String(host))-\(job)-\(precision.rawValue)"
        let creator = communicator.node.rank == 0
        var shared: SharedWeights?, problem: String?
        if creator {
            do { shared = try weights.withUnsafeBufferPointer { try SharedWeights.create(path: path, weights: $0, precision: precision) } } catch {
                problem = "\(error)"
            }
        }
        // Written (or not) everywhere before anyone opens.
        if communicator.anyRank(problem != nil) {
            shared?.unlinkName()
            message("reference: cannot share one copy per host (\(problem ?? "failed on another rank")); every rank loads its own")
            return nil
        }
        if !creator {
            do { shared = try SharedWeights.open(path: path, count: weights.count, precision: precision) } catch { problem = "\(error)" }
        }
        // Mapped everywhere: the name can go (the pages stay until the last mapping does).
        let failed = communicator.anyRank(problem != nil)
        if creator { shared?.unlinkName() }
        guard !failed, let shared else {
            message("reference: cannot share one copy per host (\(problem ?? "failed on another rank")); every rank loads its own")
            return nil
        }
        do {
            let model = try LlamaModel(config: config, precision: precision, trainable: false, sharedWeights: shared)
            message("reference: one \(precision.rawValue) copy per host, shared by \(communicator.node.size) ranks "
                           + "(\(ProgressStartupSummary.bytes(weights.count * (precision == .fp32 ? 4 : 2))) mapped from \(directory))")
            return model
        } catch {
            return nil  // the shapes were checked when the weights loaded; unreachable in practice
        }
    }
}
