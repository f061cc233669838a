import CKernelSupport
import Foundation

/// One tensor to write: Float values converted to `dtype` on the way out.
public struct SafetensorsTensorSource {
    public var name: String
    public var shape: [Int]
    public var values: UnsafeBufferPointer<Float>

    /// `values.count` must equal the product of `shape`.
    public init(name: String, shape: [Int], values: UnsafeBufferPointer<Float>) {
        self.name = name
        self.shape = shape
        self.values = values
    }
}

/// Writes safetensors files (F32, F16, BF16) and sharded sets with
/// `model.safetensors.index.json`, each file atomically (temporary name, then rename).
///
/// Values must be finite, and finite after conversion (an fp16 overflow is refused rather
/// than written as infinity). The header is padded with spaces to a multiple of 8 bytes, so
/// every tensor's data is aligned.
public enum SafetensorsWriter {
    /// Writes one file holding `tensors` in the given order.
    public static func write(
        _ tensors: [SafetensorsTensorSource], dtype: SafetensorsDType,
        metadata: [String: String] = ["format": "pt"], to url: URL, observer: FileContentsObserver? = nil
    ) throws {
        let file = url.path
        guard dtype.isWritable else {
            throw SafetensorsError(.unsupportedDType, file: file, "writing \(dtype.rawValue) is not supported (F32, F16, BF16)")
        }
        var names = Set<String>()
        for tensor in tensors {
            guard names.insert(tensor.name).inserted else {
                throw SafetensorsError(.writeFailed, file: file, tensor: tensor.name, "appears twice")
            }
            let count = tensor.shape.reduce(1, *)
            guard tensor.shape.allSatisfy({ $0 >= 0 }), count == tensor.values.count else {
                throw SafetensorsError(.shapeMismatch, file: file, tensor: tensor.name, "shape \(tensor.shape) does not hold \(tensor.values.count) values")
            }
            if let bad = tensor.values.firstIndex(where: { !$0.isFinite }) {
                throw SafetensorsError(.nonFinite, file: file, tensor: tensor.name, "value \(tensor.values[bad]) at index \(bad) is not finite; refusing to write it")
            }
        }
        let header = try headerBytes(tensors, dtype: dtype, metadata: metadata)

        try AtomicFile.write(to: url) { temporary in
            let output = try SequentialFile(creating: temporary, reportedAs: file, observer: observer)
            defer { output.close() }
            var length = UInt64(header.count).littleEndian
            try withUnsafeBytes(of: &length) { try output.write($0) }
            try header.withUnsafeBytes { try output.write($0) }
            let staging = dtype == .F32 ? nil : UnsafeMutableBufferPointer<UInt16>.allocate(capacity: stagingCount)
            defer { staging?.deallocate() }
            for tensor in tensors {
                try writeValues(tensor, dtype: dtype, staging: staging, to: output, file: file)
            }
            try output.synchronize()
        }
    }

    /// Writes `tensors` into shards of at most about `maxShardBytes` each
    /// (`<base>-00001-of-0000N.safetensors`) plus `<base>.safetensors.index.json`, the way
    /// transformers does. Returns the shard file names.
    @discardableResult
    public static func writeSharded(
        _ tensors: [SafetensorsTensorSource], dtype: SafetensorsDType, maxShardBytes: Int,
        metadata: [String: String] = ["format": "pt"], directory: URL, baseName: String = "model", observer: FileContentsObserver? = nil
    ) throws -> [String] {
        var shards: [[SafetensorsTensorSource]] = [[]]
        var shardBytes = 0
        for tensor in tensors {
            let bytes = tensor.values.count * dtype.byteSize
            if !shards[shards.count - 1].isEmpty, shardBytes + bytes > maxShardBytes {
                shards.append([])
                shardBytes = 0
            }
            shards[shards.count - 1].append(tensor)
            shardBytes += bytes
        }
        let names = shards.indices.map { String(format: "%@-%05d-of-%05d.safetensors", baseName, $0 + 1, shards.count) }
        var weightMap: [String: JSONValue] = [:]
        for (shard, name) in zip(shards, names) {
            try write(shard, dtype: dtype, metadata: metadata, to: directory.appendingPathComponent(name), observer: observer)
            for tensor in shard { weightMap[tensor.name] = .string(name) }
        }
        let totalSize = tensors.reduce(0) { $0 + $1.values.count * dtype.byteSize }
        let index: JSONValue = .object([
            "metadata": .object(["total_size": .integer(Int64(totalSize))]),
            "weight_map": .object(weightMap),
        ])
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(try encoder.encode(index), to: directory.appendingPathComponent("\(baseName).safetensors.index.json"))
        return names
    }

    // MARK: - Pieces

    /// The JSON header, space-padded to a multiple of 8 bytes.
    static func headerBytes(_ tensors: [SafetensorsTensorSource], dtype: SafetensorsDType, metadata: [String: String]) throws -> Data {
        var header: [String: JSONValue] = [:]
        if !metadata.isEmpty { header["__metadata__"] = .object(metadata.mapValues { .string($0) }) }
        var offset = 0
        for tensor in tensors {
            let end = offset + tensor.values.count * dtype.byteSize
            header[tensor.name] = .object([
                "dtype": .string(dtype.rawValue),
                "shape": .array(tensor.shape.map { .integer(Int64($0)) }),
                "data_offsets": .array([.integer(Int64(offset)), .integer(Int64(end))]),
            ])
            offset = end
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var bytes = try encoder.encode(JSONValue.object(header))
        let padding = (8 - (8 + bytes.count) % 8) % 8
        bytes.append(contentsOf: [UInt8](repeating: UInt8(ascii: " "), count: padding))
        return bytes
    }

    /// Elements converted per write for F16/BF16 (8 MiB of output).
    static let stagingCount = 4 << 20

    /// Appends one tensor: F32 straight from `values`; F16/BF16 converted through `staging`
    /// (`stagingCount` elements, reused for every tensor of the file).
    static func writeValues(
        _ tensor: SafetensorsTensorSource, dtype: SafetensorsDType, staging: UnsafeMutableBufferPointer<UInt16>?,
        to output: SequentialFile, file: String
    ) throws {
        guard dtype != .F32, let staging else {
            try output.write(UnsafeRawBufferPointer(tensor.values))
            return
        }
        var start = 0
        while start < tensor.values.count {
            let end = min(start + staging.count, tensor.values.count)
            let slice = UnsafeBufferPointer(rebasing: tensor.values[start..<end])
            let count = slice.count, converted = staging.baseAddress!
            let exponentMask: UInt16
            if dtype == .F16 {
                dpo_f32_to_f16(slice.baseAddress!, converted, count)
                exponentMask = 0x7C00
            } else {
                dpo_f32_to_bf16(slice.baseAddress!, converted, count)
                exponentMask = 0x7F80
            }
            // F16 tops out at 65504 (BF16 near Float.greatestFiniteMagnitude): a larger
            // weight would become infinity.
            if let bad = (0..<count).first(where: { converted[$0] & exponentMask == exponentMask }) {
                throw SafetensorsError(.nonFinite, file: file, tensor: tensor.name, "value \(slice[bad]) at index \(start + bad) overflows \(dtype.rawValue); save as fp32\(dtype == .F16 ? " or bf16" : "")")
            }
            try output.write(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: staging[0..<count])))
            start = end
        }
    }
}
