import Foundation

/// SHA-256 fingerprints of the models a run started from: the policy's starting weights
/// (`--model`) and the frozen reference (`--ref-model`, else `--model`).
///
/// Kept in `trainer_state.json`, so `--resume` with another `--model` or `--ref-model` of the
/// same architecture (which would silently swap the reference the rewards are measured
/// against) is refused; under MPI the reference fingerprint joins the same-run check,
/// because the reference weights, unlike the policy's, are not broadcast from rank 0.
public struct ModelFingerprints: Codable, Equatable, Sendable {
    /// Digest of the policy's starting weights files, and the directory they were read from.
    public var policy: String
    public var policyDirectory: String
    /// nil when the loss needs no reference (`--reference-free`, `--loss sft`).
    public var reference: String?
    public var referenceDirectory: String?

    public init(policy: String, policyDirectory: String, reference: String?, referenceDirectory: String?) {
        self.policy = policy
        self.policyDirectory = policyDirectory
        self.reference = reference
        self.referenceDirectory = referenceDirectory
    }

    enum CodingKeys: String, CodingKey {
        case policy, policyDirectory = "policy_directory", reference, referenceDirectory = "reference_directory"
    }

    /// Fingerprints of `policyDirectory` and of the reference (the policy's own digest when the
    /// reference is the policy directory; not hashed twice).
    public static func of(policyDirectory: String, referenceDirectory: String?, needsReference: Bool) throws -> ModelFingerprints {
        let policy = try weightsDigest(directory: policyDirectory)
        guard needsReference else { return ModelFingerprints(policy: policy, policyDirectory: policyDirectory, reference: nil, referenceDirectory: nil) }
        let referencePath = referenceDirectory ?? policyDirectory
        let sameDirectory = URL(fileURLWithPath: referencePath).standardizedFileURL == URL(fileURLWithPath: policyDirectory).standardizedFileURL
        let reference = sameDirectory ? policy : try weightsDigest(directory: referencePath)
        return ModelFingerprints(policy: policy, policyDirectory: policyDirectory, reference: reference, referenceDirectory: referencePath)
    }

    /// SHA-256 over the weights files of a model directory (every `*.safetensors`, in name
    /// order, each as its name and its own digest), as lower-case hex.
    public static func weightsDigest(directory: String) throws -> String {
        let url = URL(fileURLWithPath: directory)
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: url.path) } catch {
            throw TrainingError.model("\(directory): cannot list its files: \(error.localizedDescription)")
        }
        let weightFiles = names.filter { $0.hasSuffix(".safetensors") }.sorted()
        guard !weightFiles.isEmpty else { throw TrainingError.model("\(directory): no *.safetensors weights file") }
        var combined = ""
        for name in weightFiles {
            do { combined += "\(name) \(try SHA256.hexOfFile(at: url.appendingPathComponent(name)).digest)\n" } catch {
                throw TrainingError.model("\(directory)/\(name): cannot read it: \(error.localizedDescription)")
            }
        }
        return SHA256.hex(Data(combined.utf8))
    }

    /// Refuses a resume whose models differ from those the checkpoint was started from,
    /// naming both, unless `allowChanged` (then returns one warning line per change).
    /// A checkpoint written before fingerprints were recorded (`saved` nil) passes.
    public static func checkResume(saved: ModelFingerprints?, now: ModelFingerprints, checkpoint: String, allowChanged: Bool) throws -> [String] {
        guard let saved else { return [] }
        var changes: [String] = []
        if saved.policy != now.policy {
            changes.append("--model \(now.policyDirectory) (sha256 \(now.policy.prefix(16))) is not the model \(checkpoint) started from "
                + "(\(saved.policyDirectory), sha256 \(saved.policy.prefix(16)))")
        }
        if let savedReference = saved.reference, let reference = now.reference, savedReference != reference {
            changes.append("the reference \(now.referenceDirectory ?? "") (sha256 \(reference.prefix(16))) is not the reference \(checkpoint) "
                + "was trained against (\(saved.referenceDirectory ?? ""), sha256 \(savedReference.prefix(16)))")
        }
        guard !changes.isEmpty else { return [] }
        if allowChanged { return changes.map { "warning (--allow-changed-model): " + $0 } }
        throw TrainingError.checkpoint(changes.joined(separator: "; ")
            + "; resume with the original model(s), or pass --allow-changed-model to continue anyway")
    }
}
