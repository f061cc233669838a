import Foundation

/// The weights of a model directory: one `model.safetensors`, or shards listed by
/// `model.safetensors.index.json` (`{"metadata": {...}, "weight_map": {"<tensor>": "<shard file>"}}`).
///
/// The index is validated when opened: shard names must be plain file names in the same
/// directory, every shard must open and validate, and every tensor must be in the shard
/// the index names.
public final class SafetensorsArchive {
    public static let singleFileName = "model.safetensors"
    public static let indexFileName = "model.safetensors.index.json"

    /// Every file that holds tensors (one, or the shards in name order).
    public let files: [SafetensorsFile]
    /// Which file holds each tensor.
    private let location: [String: Int]

    /// All tensor names, sorted.
    public var tensorNames: [String] { location.keys.sorted() }

    /// Opens `directory/model.safetensors` if it exists, else the sharded set named by the index.
    public convenience init(directory: URL) throws {
        let single = directory.appendingPathComponent(Self.singleFileName)
        let index = directory.appendingPathComponent(Self.indexFileName)
        if FileManager.default.fileExists(atPath: single.path) {
            try self.init(file: single)
        } else if FileManager.default.fileExists(atPath: index.path) {
            try self.init(index: index)
        } else {
            let pickled = ["pytorch_model.bin", "pytorch_model.bin.index.json"].first {
                FileManager.default.fileExists(atPath: directory.appendingPathComponent($0).path)
            }
            let hint = pickled.map { " (\($0) is a PyTorch pickle, which is not read: convert it with transformers, e.g. `AutoModelForCausalLM.from_pretrained(dir).save_pretrained(dir, safe_serialization=True)`)" } ?? ""
            throw SafetensorsError(.unreadable, file: directory.path, "no \(Self.singleFileName) or \(Self.indexFileName) in this directory\(hint)")
        }
    }

    /// One safetensors file.
    public init(file: URL) throws {
        let opened = try SafetensorsFile(contentsOf: file)
        files = [opened]
        var location: [String: Int] = [:]
        for tensor in opened.tensors { location[tensor.name] = 0 }
        self.location = location
    }

    /// A sharded set described by its `model.safetensors.index.json`.
    public init(index url: URL) throws {
        let file = url.path
        let value: JSONValue
        do {
            value = try JSONValue.parse(Data(contentsOf: url))
        } catch {
            throw SafetensorsError(.badIndex, file: file, "cannot read the shard index as JSON (\(error.localizedDescription))")
        }
        guard let weightMap = value.objectValue?["weight_map"]?.objectValue else {
            throw SafetensorsError(.badIndex, file: file, "no \"weight_map\" object")
        }
        var shardNames: [String] = []
        var shardOfTensor: [String: String] = [:]
        for (tensor, shardValue) in weightMap {
            guard let shard = shardValue.stringValue else {
                throw SafetensorsError(.badIndex, file: file, tensor: tensor, "weight_map entry is \(shardValue.kindDescription), not a file name")
            }
            guard !shard.isEmpty, !shard.contains("/"), shard != ".", shard != ".." else {
                throw SafetensorsError(.badIndex, file: file, tensor: tensor, "shard \"\(shard)\" is not a plain file name in this directory")
            }
            if !shardNames.contains(shard) { shardNames.append(shard) }
            shardOfTensor[tensor] = shard
        }
        shardNames.sort()
        let directory = url.deletingLastPathComponent()
        files = try shardNames.map { try SafetensorsFile(contentsOf: directory.appendingPathComponent($0)) }
        var location: [String: Int] = [:]
        for (tensor, shard) in shardOfTensor {
            let position = shardNames.firstIndex(of: shard)!
            guard files[position][tensor] != nil else {
                throw SafetensorsError(.missingTensor, file: files[position].url.path, tensor: tensor, "the index \(file) places it in this shard, which does not hold it")
            }
            location[tensor] = position
        }
        self.location = location
    }

    // MARK: - Lookup and reading

    /// The file holding `name` and the tensor's header entry.
    public subscript(name: String) -> (file: SafetensorsFile, info: SafetensorsFile.TensorInfo)? {
        guard let position = location[name], let info = files[position][name] else { return nil }
        return (files[position], info)
    }

    /// Names the directory's weight files, for error messages.
    public var description: String {
        files.count == 1 ? files[0].url.path : "\(files.count) shards in \(files[0].url.deletingLastPathComponent().path)"
    }

    /// Reads `name` (checking its shape, and with `requireFinite` refusing NaN/infinity) into `destination` as Float.
    public func readFloats(
        _ name: String, expectedShape: [Int], requireFinite: Bool = false, into destination: UnsafeMutableBufferPointer<Float>
    ) throws {
        guard let (file, _) = self[name] else {
            throw SafetensorsError(.missingTensor, file: description, tensor: name, "not found")
        }
        try file.readFloats(name, expectedShape: expectedShape, requireFinite: requireFinite, into: destination)
    }
}
