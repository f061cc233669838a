import Foundation
import Llama

/// One safetensors file of optimizer state, fp32 in the flat layout order:
///
///     master_weights   [n]   the fp32 master weights (all of them, or a ZeRO-1 rank's shard)
///     exp_avg          [n]   AdamW's first moment (AdamW only)
///     exp_avg_sq       [n]   AdamW's second moment (AdamW only)
///
/// with metadata `format`, `optimizer` (its kind) and `step`, plus what the caller adds (the
/// shards' offset and world size). `optimizer.safetensors` is one (`TrainingCheckpoint`), each
/// `optimizer-shard-<r>-of-<N>.safetensors` another (`OptimizerShards`).
enum OptimizerStateFile {
    /// Writes `master` and `optimizer`'s moments (same count) to `url`; `observer` sees the bytes.
    static func write(
        master: UnsafeBufferPointer<Float>, optimizer: FlatOptimizer, extraMetadata: [String: String] = [:], to url: URL,
        observer: FileContentsObserver? = nil
    ) throws {
        let metadata = ["format": "pt", "optimizer": optimizer.options.kind.rawValue, "step": String(optimizer.stepCount)]
            .merging(extraMetadata) { _, extra in extra }
        try optimizer.firstMoment.withUnsafeBufferPointer { m in
            try optimizer.secondMoment.withUnsafeBufferPointer { v in
                var tensors = [SafetensorsTensorSource(name: "master_weights", shape: [master.count], values: master)]
                if optimizer.options.kind == .adamw {
                    tensors.append(SafetensorsTensorSource(name: "exp_avg", shape: [m.count], values: m))
                    tensors.append(SafetensorsTensorSource(name: "exp_avg_sq", shape: [v.count], values: v))
                }
                try SafetensorsWriter.write(tensors, dtype: .F32, metadata: metadata, to: url, observer: observer)
            }
        }
    }

    /// Opens `url`, refusing a file written by another optimizer (its moments would not fit this run's).
    static func open(_ url: URL, optimizerKind: OptimizerKind) throws -> SafetensorsFile {
        let file = try SafetensorsFile(contentsOf: url)
        guard file.metadata["optimizer"] == optimizerKind.rawValue else {
            throw TrainingError.checkpoint(
                "\(url.path) was written by --optimizer \(file.metadata["optimizer"] ?? "?"), this run uses \(optimizerKind.rawValue)")
        }
        return file
    }

    /// The optimizer step a file was written at (-1 when its metadata lacks it).
    static func step(of file: SafetensorsFile) -> Int { Int(file.metadata["step"] ?? "") ?? -1 }
}
