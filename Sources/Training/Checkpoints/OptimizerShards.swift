import Distributed
import Foundation
import Llama

/// The optimizer files of a ZeRO-1 checkpoint (`--zero 1`): instead of one
/// `optimizer.safetensors`, one `OptimizerStateFile` per rank,
///
///     optimizer-shard-00000-of-00002.safetensors   master_weights, exp_avg, exp_avg_sq of rank 0's shard (fp32)
///     optimizer-shard-00001-of-00002.safetensors   ... of rank 1's shard
///
/// each with metadata `optimizer`, `step`, `offset` (first element of the shard in the flat
/// parameter vector), `parameters` (P) and `world_size`. Every rank writes its own file into
/// a staging directory; rank 0 moves them into the checkpoint before the manifest is written,
/// so the manifest lists every shard and a checkpoint missing one is incomplete (skipped by
/// `--resume auto`). Shards are contiguous element ranges, so a resume onto any world size
/// (or `--zero 0`) reads the master weights of all shards and the moments of the range it needs.
public enum OptimizerShards {
    static let prefix = "optimizer-shard-"
    static let suffix = ".safetensors"

    /// `optimizer-shard-<rank>-of-<worldSize>.safetensors` (5 digits each, as transformers' shards).
    public static func fileName(rank: Int, worldSize: Int) -> String {
        prefix + String(format: "%05d-of-%05d", rank, worldSize) + suffix
    }

    /// (rank, world size) of a shard file name; nil for any other name.
    static func parse(_ name: String) -> (rank: Int, worldSize: Int)? {
        guard name.hasPrefix(prefix), name.hasSuffix(suffix) else { return nil }
        let parts = name.dropFirst(prefix.count).dropLast(suffix.count).split(separator: "-")
        guard parts.count == 3, parts[1] == "of", let rank = Int(parts[0]), let size = Int(parts[2]), rank >= 0, rank < size else { return nil }
        return (rank, size)
    }

    /// The shard files in `directory`, by rank, with the world size they were written by; nil
    /// when there are none (a `--zero 0` checkpoint). Throws when they disagree on the world
    /// size or one is missing, naming it.
    static func list(in directory: URL) throws -> (worldSize: Int, files: [URL])? {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        let shards = names.compactMap { name in parse(name).map { (name, $0) } }
        guard let first = shards.first else { return nil }
        let worldSize = first.1.worldSize
        if let other = shards.first(where: { $0.1.worldSize != worldSize }) {
            throw TrainingError.checkpoint(
                "\(directory.path) holds optimizer shards of \(worldSize) and of \(other.1.worldSize) ranks (\(first.0), \(other.0)); it is not one checkpoint")
        }
        let present = Set(shards.map(\.1.rank))
        if let missing = (0..<worldSize).first(where: { !present.contains($0) }) {
            throw TrainingError.checkpoint(
                "\(directory.path) is incomplete: the optimizer shard of rank \(missing) of \(worldSize) "
                    + "(\(fileName(rank: missing, worldSize: worldSize))) is missing")
        }
        return (worldSize, (0..<worldSize).map { directory.appendingPathComponent(fileName(rank: $0, worldSize: worldSize)) })
    }

    // MARK: - Writing

    /// Writes this rank's shard file into `directory`.
    static func write(into directory: URL, rank: Int, worldSize: Int, parameters: Int, sharded: ShardedOptimizer) throws {
        let shardMetadata = ["offset": String(sharded.shard.lowerBound), "parameters": String(parameters), "world_size": String(worldSize)]
        try sharded.masterShard.withUnsafeBufferPointer { master in
            try OptimizerStateFile.write(
                master: master, optimizer: sharded.optimizer, extraMetadata: shardMetadata,
                to: directory.appendingPathComponent(fileName(rank: rank, worldSize: worldSize)))
        }
    }

    /// Moves every rank's shard file from `staging` into the checkpoint `directory`; throws
    /// naming a shard that is not there (a rank that could not write it, or OUT not on a file
    /// system every rank shares).
    static func collect(from staging: URL, into directory: URL, worldSize: Int) throws {
        for rank in 0..<worldSize {
            let name = fileName(rank: rank, worldSize: worldSize)
            let source = staging.appendingPathComponent(name)
            guard FileManager.default.fileExists(atPath: source.path) else {
                throw TrainingError.output(
                    "rank \(rank)'s optimizer shard \(source.path) is missing: with --zero 1 every rank writes its shard "
                        + "into OUT, which must be on a file system all ranks share")
            }
            try FileManager.default.moveItem(at: source, to: directory.appendingPathComponent(name))
        }
    }

    // MARK: - Reading

    /// The optimizer state of a sharded checkpoint: the step, the full master weights [P] and
    /// the moments of elements `range` (all P when nil), whatever world size wrote it.
    static func read(_ files: [URL], optimizerKind: OptimizerKind, range: Range<Int>?)
        throws -> (step: Int, master: [Float], first: [Float], second: [Float]) {
        var pieces: [(file: SafetensorsFile, offset: Int, count: Int)] = []
        var step = -1, parameters = -1
        for url in files {
            let file = try OptimizerStateFile.open(url, optimizerKind: optimizerKind)
            guard let offset = Int(file.metadata["offset"] ?? ""), let total = Int(file.metadata["parameters"] ?? ""),
                  let fileStep = Int(file.metadata["step"] ?? "")
            else { throw TrainingError.checkpoint("\(url.path) lacks the offset/parameters/step metadata of an optimizer shard") }
            if step >= 0 && (fileStep != step || total != parameters) {
                throw TrainingError.checkpoint("\(url.path) is of step \(fileStep) with \(total) parameters, the other shards of step \(step) with \(parameters)")
            }
            step = fileStep
            parameters = total
            pieces.append((file, offset, try file.info("master_weights").elementCount))
        }
        var expected = 0
        for piece in pieces {
            guard piece.offset == expected else {
                throw TrainingError.checkpoint("\(piece.file.url.path) starts at element \(piece.offset), expected \(expected): the shards do not tile the parameters")
            }
            expected += piece.count
        }
        guard expected == parameters else {
            throw TrainingError.checkpoint("the optimizer shards hold \(expected) parameters, their metadata says \(parameters)")
        }
        var master = [Float](repeating: 0, count: parameters)
        for piece in pieces {
            let values = try piece.file.floats("master_weights")
            master.replaceSubrange(piece.offset..<(piece.offset + piece.count), with: values)
        }
        guard optimizerKind == .adamw else { return (step, master, [], []) }
        let wanted = range ?? 0..<parameters
        var first = [Float](repeating: 0, count: wanted.count), second = first
        for piece in pieces {
            let overlap = wanted.clamped(to: piece.offset..<(piece.offset + piece.count))
            guard !overlap.isEmpty else { continue }
            let m = try piece.file.floats("exp_avg"), v = try piece.file.floats("exp_avg_sq")
            let source = (overlap.lowerBound - piece.offset)..<(overlap.upperBound - piece.offset)
            let target = (overlap.lowerBound - wanted.lowerBound)..<(overlap.upperBound - wanted.lowerBound)
            first.replaceSubrange(target, with: m[source])
            second.replaceSubrange(target, with: v[source])
        }
        return (step, master, first, second)
    }
}
