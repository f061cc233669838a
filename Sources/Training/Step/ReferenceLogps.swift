import Distributed
import Foundation
import Llama
import Preference

/// Where the reference log-probs of a batch come from.
public enum ReferenceLogps {
    /// Not needed (`--reference-free`, `--loss sft`): the loss ignores them.
    case none
    /// A frozen model run forward on the same concatenated batch.
    case model(LlamaModel)
    /// The policy itself with its LoRA adapters switched off (no second copy of the weights).
    case baseModel(LlamaModel)
    /// Precomputed sums, indexed by encoded pair index (`--precompute-ref`).
    case cached(chosen: [Float], rejected: [Float])

    /// The reference sequence log-prob sums of `batch` (empty arrays for `.none`); `shared` is
    /// the batch packed with shared prompts (`--share-prompt`), run instead of the plain rows.
    public func sums(for batch: PreferenceBatch, shared: SharedPromptRows? = nil) -> (chosen: [Float], rejected: [Float]) {
        switch self {
        case .none:
            return ([], [])
        case .model(let model):
            let logps = shared.map { model.forward($0, saveForBackward: false) } ?? model.forward(batch.rows, saveForBackward: false)
            // Idle until the next step's reference forward, through the policy's backward (the step's peak).
            model.releaseForwardScratch()
            return batch.sequenceLogps(logps)
        case .baseModel(let model):
            if let shared { return batch.sequenceLogps(model.forwardWithoutAdapters(shared)) }
            return batch.sequenceLogps(model.forwardWithoutAdapters(batch.rows))
        case .cached(let chosen, let rejected):
            return (batch.pairIndices.map { chosen[$0] }, batch.pairIndices.map { rejected[$0] })
        }
    }
}

/// `--precompute-ref`: the reference log-probs of a whole dataset, computed once (each rank
/// scores its share of the pairs, then they are gathered) and cached in
/// `OUT/reference_logps/<name>-<key>.safetensors`.
///
/// The key is a SHA-256 of the reference weights, the precision they run in, and every
/// encoded token of the dataset (which covers the data file, tokenizer and encoding
/// options), so a changed model or data never reuses a stale cache and a resumed run
/// reuses the one it made.
public enum ReferenceLogpsCache {
    public static let directoryName = "reference_logps"

    /// The cache key of `pairs` scored by a reference with `weights` under `precision`.
    public static func key(weights: [Float], precision: Precision, pairs: [EncodedPair]) -> String {
        var hasher = SHA256()
        weights.withUnsafeBytes { hasher.update($0) }
        hasher.update(Data(precision.rawValue.utf8))
        hasher.update(pairs: pairs)
        return hasher.finalize().prefix(12).map { String(format: "%02x", $0) }.joined()
    }

    /// Scores every pair with `model` (rank r takes pairs r, r+W, ...) and gathers the sums
    /// on every rank; returns (chosen, rejected) indexed by pair.
    public static func compute(
        model: LlamaModel, pairs: [EncodedPair], batchPairs: Int, paddingId: Int32, communicator: Communicator
    ) -> (chosen: [Float], rejected: [Float]) {
        let mine = Array(stride(from: communicator.rank, to: pairs.count, by: communicator.size))
        var local: [Float] = []  // chosen, rejected interleaved, in `mine` order
        local.reserveCapacity(2 * mine.count)
        for start in stride(from: 0, to: mine.count, by: batchPairs) {
            let batch = PreferenceBatch(pairs: pairs, indices: Array(mine[start..<min(start + batchPairs, mine.count)]), paddingId: paddingId)
            let (chosen, rejected) = batch.sequenceLogps(model.forward(batch.rows, saveForBackward: false))
            for i in 0..<batch.pairCount { local += [chosen[i], rejected[i]] }
        }
        let gathered = communicator.size > 1 ? communicator.allGather(local) : [local]
        var chosen = [Float](repeating: 0, count: pairs.count)
        var rejected = [Float](repeating: 0, count: pairs.count)
        for (rank, values) in gathered.enumerated() {
            for (k, index) in stride(from: rank, to: pairs.count, by: communicator.size).enumerated() {
                chosen[index] = values[2 * k]
                rejected[index] = values[2 * k + 1]
            }
        }
        return (chosen, rejected)
    }

    /// The cache file of dataset `name` under `outputDirectory`.
    public static func url(outputDirectory: URL, name: String, key: String) -> URL {
        outputDirectory.appendingPathComponent(directoryName).appendingPathComponent("\(name)-\(key).safetensors")
    }

    /// The cached sums, or nil when there is no (valid) cache file.
    public static func load(_ url: URL, pairCount: Int) -> (chosen: [Float], rejected: [Float])? {
        guard FileManager.default.fileExists(atPath: url.path),
            let file = try? SafetensorsFile(contentsOf: url),
            let chosen = try? file.floats("chosen"), let rejected = try? file.floats("rejected"),
            chosen.count == pairCount, rejected.count == pairCount,
            file.metadata[valuesDigestKey] == valuesDigest(chosen: chosen, rejected: rejected)
        else { return nil }
        return (chosen, rejected)
    }

    /// Metadata key of the SHA-256 of the stored values: a cache whose numbers were edited
    /// (zeros, NaN) would otherwise be trusted as the reference.
    static let valuesDigestKey = "values_sha256"

    /// SHA-256 of the chosen then the rejected float32 values.
    static func valuesDigest(chosen: [Float], rejected: [Float]) -> String {
        var hasher = SHA256()
        chosen.withUnsafeBytes { hasher.update($0) }
        rejected.withUnsafeBytes { hasher.update($0) }
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }

    /// Why an existing cache file is not used (its values fail their checksum), nil otherwise.
    public static func checksumProblem(_ url: URL) -> String? {
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        guard let file = try? SafetensorsFile(contentsOf: url), let chosen = try? file.floats("chosen"),
            let rejected = try? file.floats("rejected"), file.metadata[valuesDigestKey] == valuesDigest(chosen: chosen, rejected: rejected)
        else { return "reference cache \(url.lastPathComponent) does not match its checksum (edited or corrupted); recomputing it" }
        return nil
    }

    /// Writes the cache file (atomically, by the safetensors writer).
    public static func save(_ url: URL, chosen: [Float], rejected: [Float]) throws {
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try chosen.withUnsafeBufferPointer { c in
            try rejected.withUnsafeBufferPointer { r in
                try SafetensorsWriter.write(
                    [SafetensorsTensorSource(name: "chosen", shape: [c.count], values: c),
                     SafetensorsTensorSource(name: "rejected", shape: [r.count], values: r)],
                    dtype: .F32, metadata: [valuesDigestKey: valuesDigest(chosen: chosen, rejected: rejected)], to: url)
            }
        }
    }
}

extension SHA256 {
    /// Feeds every encoded token of `pairs` (prompt, chosen, rejected, each preceded by its
    /// length), the byte stream the data fingerprint and the reference cache key share.
    mutating func update(pairs: [EncodedPair]) {
        for pair in pairs {
            for part in [pair.prompt, pair.chosen, pair.rejected] {
                var count = Int64(part.count)
                withUnsafeBytes(of: &count) { update($0) }
                part.withUnsafeBytes { update($0) }
            }
        }
    }
}
