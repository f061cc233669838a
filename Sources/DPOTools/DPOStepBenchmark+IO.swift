import Distributed
import Foundation
import Llama
import Tokenization
import Training
#if canImport(Glibc)
import Glibc
#endif

extension DPOStepBenchmark {
    /// Start-up: from a model directory on disk (page cache warm) to a `DPOStep` ready for its
    /// first step: config and weights read, policy and reference built, optimizer and step made.
    public struct LoadFigures: Sendable {
        public var seconds: Double
        /// CPU and system seconds and minor page faults of the load (this rank).
        public var usage: ResourceUsage
    }

    /// A checkpoint save as `dpo train` writes it, and plain writes of the same bytes.
    public struct SaveFigures: Sendable {
        /// `CheckpointStore.save` of the model, tokenizer, trainer state and optimizer state,
        /// fsyncs, manifest and rename included.
        public var seconds: Double
        public var usage: ResourceUsage
        /// Bytes of every file of the checkpoint (manifest included).
        public var bytes: Int
        /// The same number of files of the same sizes written with 8 MiB sequential `write`s and
        /// one `fsync` each, in the same directory (what `dd bs=8M conv=fsync` does per file).
        public var plainWriteSeconds: Double
    }

    /// A preset written as a Hugging Face model directory (seed-1 weights stored as bf16, as
    /// published checkpoints usually are, and the byte tokenizer) for the load to read back.
    static func writePresetModel(config: LlamaConfig, to directory: URL) throws {
        let weights = WeightInitializer(seed: 1).weights(for: config)
        try ModelDirectory.save(config: config, weights: weights, to: directory, dtype: .bf16)
        try TokenizerFiles.writeByteTokenizer(to: directory)
    }

    /// Saves `step`'s model and optimizer state as `dpo train` does (default `--save-dtype fp32`,
    /// `--zero 0`) into `directory/out`, then writes the same file sizes plainly into `directory/dd`.
    static func timeSave(step: DPOStep, config: LlamaConfig, modelDirectory: URL, under directory: URL) throws -> SaveFigures {
        let output = directory.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: output, withIntermediateDirectories: true)
        // A checkpoint copies the model's tokenizer files; a model directory without them gets the byte tokenizer's.
        var tokenizerSource = modelDirectory
        if !FileManager.default.fileExists(atPath: modelDirectory.appendingPathComponent("tokenizer.json").path) {
            tokenizerSource = directory.appendingPathComponent("tokenizer")
            try TokenizerFiles.writeByteTokenizer(to: tokenizerSource)
        }
        var state = TrainerState()
        state.globalStep = step.stepIndex
        let parameters = TrainingParameters()
        let store = CheckpointStore(outputDirectory: output)
        let clock = ContinuousClock(), start = clock.now, usage = ResourceUsage.now()
        let digests = CheckpointDigests()
        let saved = try store.save(name: CheckpointStore.checkpointName(step: step.stepIndex), step: step.stepIndex, digests: digests) { target in
            try TrainingCheckpoint.write(
                into: target, config: config, masterWeights: step.gatherMasterWeights(), optimizer: step.optimizer, state: state,
                parameters: parameters, tokenizerSource: tokenizerSource, digests: digests)
        }
        let seconds = DPOStep.seconds(clock.now - start), saveUsage = ResourceUsage.now() - usage
        let sizes = try fileSizes(under: saved)
        let plain = try timePlainWrites(sizes: sizes, in: directory.appendingPathComponent("dd"))
        return SaveFigures(seconds: seconds, usage: saveUsage, bytes: sizes.reduce(0, +), plainWriteSeconds: plain)
    }

    /// Sizes of the regular files under `directory` (recursively).
    static func fileSizes(under directory: URL) throws -> [Int] {
        guard let enumerator = FileManager.default.enumerator(at: directory, includingPropertiesForKeys: [.isRegularFileKey, .fileSizeKey]) else {
            throw TrainingError.output("bench: cannot list \(directory.path)")
        }
        var sizes: [Int] = []
        for case let url as URL in enumerator {
            let values = try url.resourceValues(forKeys: [.isRegularFileKey, .fileSizeKey])
            if values.isRegularFile == true { sizes.append(values.fileSize ?? 0) }
        }
        return sizes
    }

    /// Seconds to write files of `sizes` bytes into `directory` with 8 MiB `write` calls and
    /// one `fsync` per file (the files are removed afterwards).
    static func timePlainWrites(sizes: [Int], in directory: URL) throws -> Double {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let chunk = 8 << 20
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 4096)
        defer { buffer.deallocate() }
        for i in 0..<chunk { buffer[i] = UInt8(truncatingIfNeeded: i &* 131 &+ (i >> 12)) }
        let clock = ContinuousClock(), start = clock.now
        for (index, size) in sizes.enumerated() {
            let path = directory.appendingPathComponent("file-\(index)").path
            let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            guard descriptor >= 0 else { throw TrainingError.output("bench: cannot create \(path) (errno \(errno))") }
            defer { close(descriptor) }
            var left = size
            while left > 0 {
                let written = write(descriptor, buffer.baseAddress!, min(chunk, left))
                if written < 0 && errno == EINTR { continue }
                guard written > 0 else { throw TrainingError.output("bench: writing \(path) failed (errno \(errno))") }
                left -= written
            }
            guard fsync(descriptor) == 0 else { throw TrainingError.output("bench: fsync of \(path) failed (errno \(errno))") }
        }
        return DPOStep.seconds(clock.now - start)
    }
}
