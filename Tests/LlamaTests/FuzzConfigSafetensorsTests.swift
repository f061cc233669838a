import Foundation
import TestSupport
import XCTest
@testable import Llama

/// Fuzzing `config.json`, safetensors files and whole model directories: random mutations (fixed
/// seeds) of valid inputs. Each case must load or throw an error naming the file, never crash or
/// take more than 2 s; the peak resident set may grow by at most 256 MB per test, so a header
/// claiming 10^15 elements (or a config claiming 10^12 parameters) must be refused before anything
/// is allocated from it. What loads must be usable: a config yields a `ParameterLayout` whose sizes
/// add up without overflow, a safetensors file's tensors read without a crash.
final class FuzzConfigSafetensorsTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws { directory = try makeFuzzDirectory("llama") }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: directory) }

    // MARK: - Valid configs

    /// A transformers-5-style config: rope_parameters, an EOS list, dtype, extra keys that are ignored.
    static let transformersConfig = #"""
        {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 32, "intermediate_size": 64,
         "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8, "vocab_size": 300,
         "rms_norm_eps": 1e-06, "rope_parameters": {"rope_type": "default", "rope_theta": 500000.0},
         "tie_word_embeddings": false, "max_position_embeddings": 4096, "bos_token_id": 1, "eos_token_id": [2, 3],
         "pad_token_id": null, "hidden_act": "silu", "dtype": "bfloat16", "attention_bias": false, "mlp_bias": false,
         "attention_dropout": 0.0, "initializer_range": 0.02, "use_cache": true, "sliding_window": null,
         "rope_scaling": null, "transformers_version": "5.0.0"}
        """#

    func validConfigs() throws -> [[UInt8]] {
        try [LlamaPreset.tiny.config.jsonData(), LlamaPreset.minimind.config.jsonData()].map { [UInt8]($0) }
            + [Array(Self.transformersConfig.utf8)]
    }

    /// Checks what a loaded config promises: validation passes again, the layout's sizes add up
    /// with checked arithmetic to the parameter count, groups are contiguous, and it round-trips.
    func checkLoadedConfig(_ config: LlamaConfig, _ run: FuzzRun) throws {
        try config.validate()
        guard let count = config.checkedParameterCount(), count >= 0, count <= LlamaConfig.maximumParameters else {
            run.fail("loaded config has no valid parameter count: \(config)")
            return
        }
        let layout = ParameterLayout(config: config)
        var total = 0
        for entry in layout.entries {
            var elements = 1
            for dimension in entry.shape {
                guard dimension > 0 else { return run.fail("\(entry.name) has dimension \(dimension)") }
                let product = elements.multipliedReportingOverflow(by: dimension)
                guard !product.overflow else { return run.fail("\(entry.name) \(entry.shape) overflows") }
                elements = product.partialValue
            }
            guard entry.offset == total else { return run.fail("\(entry.name) at \(entry.offset), expected \(total)") }
            let sum = total.addingReportingOverflow(elements)
            guard !sum.overflow else { return run.fail("layout total overflows at \(entry.name)") }
            total = sum.partialValue
        }
        if total != layout.totalCount || total != count {
            run.fail("layout total \(layout.totalCount), summed \(total), checked count \(count)")
        }
        if layout.groupRanges.count != config.numHiddenLayers + 2 || layout.groupRanges.last?.upperBound != total {
            run.fail("group ranges \(layout.groupRanges.count) do not cover the layout")
        }
        let decoded = try JSONDecoder().decode(LlamaConfig.self, from: config.jsonData())
        if decoded != config { run.fail("config does not round-trip through config.json") }
    }

    // MARK: - config.json

    func testMutatedConfigFiles() throws {
        let valid = try validConfigs()
        let documents = valid.map { FuzzJSON.parse($0)! }
        var mutator = Mutator(seed: 0x5EED_C0F)
        let run = FuzzRun(kind: "config.json")
        for index in 0..<2_500 {
            let base = mutator.below(valid.count)
            let (bytes, description): ([UInt8], String)
            if mutator.chance(3, in: 4) {
                let result = mutator.mutateJSON(documents[base], others: documents)
                (bytes, description) = (result.json.bytes, "config \(base): " + result.description)
            } else {
                let result = mutator.mutateBytes(valid[base], others: valid)
                (bytes, description) = (result.bytes, "config \(base) bytes: " + result.description)
            }
            let url = directory.appendingPathComponent("config\(index).json")
            try Data(bytes).write(to: url)
            run.run(description, fileName: url.lastPathComponent) {
                let config = try LlamaConfig.load(from: url)
                try checkLoadedConfig(config, run)
            }
            try? FileManager.default.removeItem(at: url)
        }
        print(run.finish())
        XCTAssertEqual(run.failures, [], run.failures.prefix(20).joined(separator: "\n"))
        XCTAssertGreaterThan(run.loaded, 100, "the mutations should leave many configs loadable")
        XCTAssertGreaterThan(run.refused, 300)
    }

    /// The sizes alone, drawn from edge values (1, odd, powers of two, 2^31, 10^15, near Int.max),
    /// so that products and sums of them overflow in every combination.
    func testConfigSizesAtTheEdges() throws {
        let edges: [Int64] = [1, 2, 3, 8, 64, 4096, 65_537, 1 << 20, 1 << 31, 1_000_000_000_000_000, 1 << 62,
                              1_537_228_672_809_129_301, Int64.max / 2, Int64.max - 1, Int64.max]
        var mutator = Mutator(seed: 0x5EED_515E)
        let run = FuzzRun(kind: "config sizes")
        let keys = ["hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                    "head_dim", "vocab_size", "max_position_embeddings"]
        for index in 0..<1_500 {
            var members: [(key: String, value: FuzzJSON)] = [("model_type", .string("llama"))]
            for key in keys where key != "head_dim" || mutator.chance(2, in: 3) {
                let value = mutator.chance(1, in: 3) ? Int64(1 << mutator.below(12)) : mutator.pick(edges)
                members.append((key, .number(String(value))))
            }
            members.append(("tie_word_embeddings", .bool(mutator.chance(1, in: 2))))
            let url = directory.appendingPathComponent("sizes\(index).json")
            let text = FuzzJSON.object(members).text
            try Data(text.utf8).write(to: url)
            run.run(text, fileName: url.lastPathComponent) {
                let config = try LlamaConfig.load(from: url)
                try checkLoadedConfig(config, run)
            }
            try? FileManager.default.removeItem(at: url)
        }
        print(run.finish())
        XCTAssertEqual(run.failures, [], run.failures.prefix(20).joined(separator: "\n"))
        XCTAssertGreaterThan(run.loaded, 20)
        XCTAssertGreaterThan(run.refused, 300)
    }

    // MARK: - Bugs the fuzzing found (kept as direct regression tests)

    /// `checkedParameterCount` added the final norm to the heads unchecked: with vocab (2^63-2)/6 and
    /// hidden 3 the untied heads are 2^63-2 parameters, the sum wrapped negative, and the config
    /// passed the parameter cap.
    func testParameterCountOverflowIsRefused() throws {
        let url = directory.appendingPathComponent("overflow.json")
        try Data(#"""
            {"model_type": "llama", "hidden_size": 3, "intermediate_size": 1, "num_hidden_layers": 1,
             "num_attention_heads": 1, "num_key_value_heads": 1, "head_dim": 2, "vocab_size": 1537228672809129301,
             "tie_word_embeddings": false}
            """#.utf8).write(to: url)
        XCTAssertThrowsError(try LlamaConfig.load(from: url)) { error in
            XCTAssertTrue("\(error)".contains("overflow.json") && "\(error)".contains("parameters"), "\(error)")
        }
    }

    /// A config whose rope_theta is not exactly a Float (1e11) was saved with rope_theta as Float text
    /// and rope_parameters.rope_theta as the widened Double; loading it back refused the disagreement.
    func testSavedConfigWithInexactRopeThetaLoadsBack() throws {
        for theta: Float in [1e11, 0.1, 9.223372e18, 123_456.79] {
            var config = LlamaPreset.tiny.config
            config.ropeTheta = theta
            let url = directory.appendingPathComponent("theta.json")
            try config.save(to: url)
            XCTAssertEqual(try LlamaConfig.load(from: url), config, "rope_theta \(theta)")
        }
    }

    /// Deeply nested JSON took seconds in JSONDecoder (0.5 s at depth 257, over 5 s near the parser's
    /// 512 limit: a hang on a 1 KB config.json or safetensors header); now refused at once.
    func testDeeplyNestedJSONIsRefusedQuickly() throws {
        for depth in [100, 300, 511, 600] {
            let nested = String(repeating: "[", count: depth) + "1" + String(repeating: "]", count: depth)
            let config = directory.appendingPathComponent("deep.json")
            try Data(#"{"model_type": "llama", "hidden_size": \#(nested)}"#.utf8).write(to: config)
            var start = monotonicSeconds()
            XCTAssertThrowsError(try LlamaConfig.load(from: config)) { XCTAssertTrue("\($0)".contains("deep.json"), "\($0)") }
            XCTAssertLessThan(monotonicSeconds() - start, 0.2, "config.json nested \(depth) deep")

            let header = Array(#"{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4], "x": \#(nested)}}"#.utf8)
            let weights = directory.appendingPathComponent("deep.safetensors")
            try Data(Self.fileBytes(header: header, data: [0, 0, 0, 0])).write(to: weights)
            start = monotonicSeconds()
            XCTAssertThrowsError(try SafetensorsFile(contentsOf: weights)) { XCTAssertTrue("\($0)".contains("deep.safetensors"), "\($0)") }
            XCTAssertLessThan(monotonicSeconds() - start, 0.2, "safetensors header nested \(depth) deep")
        }
    }

    // MARK: - Valid safetensors files

    /// A file of mixed dtypes (F32, F16, BF16, F64, I32, U8, an empty tensor) written by hand, as
    /// (header, data region).
    static func mixedFile() -> (header: FuzzJSON, data: [UInt8]) {
        var data: [UInt8] = []
        var members: [(key: String, value: FuzzJSON)] = [("__metadata__", .object([("format", .string("pt"))]))]
        func add(_ name: String, _ dtype: String, _ shape: [Int], _ bytes: [UInt8]) {
            let begin = data.count
            data += bytes
            members.append((name, .object([
                ("dtype", .string(dtype)), ("shape", .array(shape.map { .number(String($0)) })),
                ("data_offsets", .array([.number(String(begin)), .number(String(data.count))])),
            ])))
        }
        func bytes<T>(_ values: [T]) -> [UInt8] { values.withUnsafeBytes { Array($0) } }
        add("weight", "F32", [2, 3], bytes([Float](arrayLiteral: 1, -2, 3.5, 0, 1e-3, 7)))
        add("half", "F16", [4], bytes([UInt16](arrayLiteral: 0x3C00, 0xC000, 0x7BFF, 0x0001)))
        add("brain", "BF16", [1, 2], bytes([UInt16](arrayLiteral: 0x3F80, 0xBF80)))
        add("double", "F64", [2], bytes([Double](arrayLiteral: 0.25, -1e10)))
        add("ids", "I32", [3], bytes([Int32](arrayLiteral: 1, -1, 258)))
        add("flags", "U8", [2, 1], [0, 1])
        add("empty", "F32", [0, 5], [])
        return (.object(members), data)
    }

    /// File bytes: 8-byte little-endian header length, header, data.
    static func fileBytes(header: [UInt8], data: [UInt8], claimedLength: UInt64? = nil) -> [UInt8] {
        withUnsafeBytes(of: (claimedLength ?? UInt64(header.count)).littleEndian) { Array($0) } + header + data
    }

    /// Splits a valid file into its header document and data region.
    static func split(_ file: [UInt8]) -> (header: FuzzJSON, data: [UInt8]) {
        let length = Int(file[0..<8].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
        return (FuzzJSON.parse(Array(file[8..<(8 + length)]))!, Array(file[(8 + length)...]))
    }

    /// Shapes and offsets a hostile header may claim: 10^15 elements, products past Int64, negative
    /// and fractional dimensions, offsets past the file or reversed.
    static let hostileShapes: [String] = [
        "[1000000000000000]", "[100000, 100000, 100000]", "[4611686018427387904, 4]", "[9223372036854775807]",
        "[1000000000000000, 0]", "[0, 1000000000000000]", "[-1]", "[2, -3]", "[1.5]", "[18446744073709551616]",
        "[]", "[[2]]", "[\"2\"]", "null", "{}",
    ]
    static let hostileOffsets: [String] = [
        "[0, 4000000000000000]", "[0, 9223372036854775807]", "[9223372036854775807, 0]", "[-8, 0]", "[4, 0]",
        "[0, 18446744073709551615]", "[0]", "[0, 4, 8]", "[0.0, 4.0]", "[\"0\", \"4\"]", "[0, 24]", "[8, 32]", "[0, 0]",
    ]

    /// One mutated safetensors file made from `valid` (header and data) by one of: a JSON mutation of
    /// the header (length rewritten, or kept stale), byte mutations anywhere, an edge header length,
    /// a hostile shape or offsets for one tensor, a truncated or extended data region.
    func mutatedSafetensors(_ valid: (header: FuzzJSON, data: [UInt8]), others: [FuzzJSON], _ mutator: inout Mutator) -> ([UInt8], String) {
        let header = valid.header.bytes
        switch mutator.below(10) {
        case 0, 1, 2:
            let result = mutator.mutateJSON(valid.header, others: others)
            return (Self.fileBytes(header: result.json.bytes, data: valid.data), "header: " + result.description)
        case 3:
            let result = mutator.mutateJSON(valid.header, others: others)
            return (Self.fileBytes(header: result.json.bytes, data: valid.data, claimedLength: UInt64(header.count)),
                    "header, stale length: " + result.description)
        case 4, 5:
            let result = mutator.mutateBytes(Self.fileBytes(header: header, data: valid.data))
            return (result.bytes, "file bytes: " + result.description)
        case 6:
            let fileSize = UInt64(8 + header.count + valid.data.count)
            let length = mutator.pick([0, 1, 2, UInt64(header.count) - 1, UInt64(header.count) + 1, fileSize - 8, fileSize - 7,
                                       100_000_001, 1 << 32, 1 << 63, UInt64.max, UInt64.max - 7])
            return (Self.fileBytes(header: header, data: valid.data, claimedLength: length), "header length \(length)")
        case 7, 8:
            guard case .object(var members) = valid.header else { return (header, "not an object") }
            let index = mutator.below(members.count)
            guard case .object(var entry) = members[index].value, let shapeIndex = entry.firstIndex(where: { $0.key == "shape" }),
                  let offsetsIndex = entry.firstIndex(where: { $0.key == "data_offsets" }) else { return (header, "no tensor") }
            let shape = mutator.pick(Self.hostileShapes)
            entry[shapeIndex].value = .raw(shape)
            var what = "\(members[index].key): shape \(shape)"
            if mutator.chance(1, in: 2) {
                let offsets = mutator.pick(Self.hostileOffsets)
                entry[offsetsIndex].value = .raw(offsets)
                what += ", data_offsets \(offsets)"
            }
            members[index].value = .object(entry)
            return (Self.fileBytes(header: FuzzJSON.object(members).bytes, data: valid.data), what)
        default:
            let keep = mutator.below(valid.data.count + 1)
            let extra = mutator.chance(1, in: 2) ? [UInt8](repeating: 0xAB, count: mutator.below(64)) : []
            return (Self.fileBytes(header: header, data: Array(valid.data[..<keep]) + extra),
                    "data region cut to \(keep) bytes + \(extra.count)")
        }
    }

    /// Reads every tensor of an opened file and checks its header entry against the file.
    func readAll(_ file: SafetensorsFile, fileSize: Int, _ run: FuzzRun) throws {
        for tensor in file.tensors {
            let elements = tensor.shape.reduce(1) { $0.multipliedReportingOverflow(by: $1).partialValue }
            let bytes = tensor.elementCount.multipliedReportingOverflow(by: tensor.dtype.byteSize)
            if elements != tensor.elementCount || bytes.overflow || bytes.partialValue != tensor.byteRange.count
                || tensor.byteRange.lowerBound < 8 || tensor.byteRange.upperBound > fileSize {
                run.fail("tensor \(tensor.name) \(tensor.shape) \(tensor.dtype) claims \(tensor.byteRange) in \(fileSize) bytes")
                continue
            }
            if tensor.dtype.isReadableAsFloat {
                let values = try file.floats(tensor.name)
                if values.count != tensor.elementCount { run.fail("\(tensor.name): \(values.count) values read") }
            } else if tensor.dtype.isInteger {
                _ = try file.integers(tensor.name)
            }
        }
    }

    // MARK: - Safetensors files

    func testMutatedSafetensorsFiles() throws {
        let mixed = Self.mixedFile()
        let written = directory.appendingPathComponent("written.safetensors")
        let values: [Float] = (0..<24).map { Float($0) * 0.25 - 3 }
        try values.withUnsafeBufferPointer { buffer in
            let sources = [SafetensorsTensorSource(name: "a", shape: [4, 3], values: UnsafeBufferPointer(rebasing: buffer[0..<12])),
                           SafetensorsTensorSource(name: "b.weight", shape: [12], values: UnsafeBufferPointer(rebasing: buffer[12..<24]))]
            try SafetensorsWriter.write(sources, dtype: .BF16, to: written)
        }
        let valid = [mixed, Self.split([UInt8](try Data(contentsOf: written)))]
        let others = valid.map(\.header)
        var mutator = Mutator(seed: 0x5EED_5AFE)
        let run = FuzzRun(kind: "safetensors")
        for index in 0..<2_500 {
            let (bytes, description) = mutatedSafetensors(mutator.pick(valid), others: others, &mutator)
            let url = directory.appendingPathComponent("case\(index).safetensors")
            try Data(bytes).write(to: url)
            run.run(description, fileName: url.lastPathComponent) {
                let file = try SafetensorsFile(contentsOf: url)
                try readAll(file, fileSize: bytes.count, run)
            }
            try? FileManager.default.removeItem(at: url)
        }
        print(run.finish())
        XCTAssertEqual(run.failures, [], run.failures.prefix(20).joined(separator: "\n"))
        XCTAssertGreaterThan(run.loaded, 100, "the mutations should leave many files loadable")
        XCTAssertGreaterThan(run.refused, 300)
    }

    /// Directly: headers claiming 10^15 elements with offsets to match are refused by the header check,
    /// without allocating (the file is 100 bytes).
    func testHugeShapeClaimsAreRefusedBeforeAllocating() throws {
        let before = peakResidentBytes()
        for (shape, offsets) in [("[1000000000000000]", "[0, 4000000000000000]"), ("[1000000, 1000000, 1000]", "[0, 4000000000000000]"),
                                 ("[4611686018427387904, 4]", "[0, 0]"), ("[1000000000000000]", "[0, 4]")] {
            let header = Array(#"{"w": {"dtype": "F32", "shape": \#(shape), "data_offsets": \#(offsets)}}"#.utf8)
            let url = directory.appendingPathComponent("huge.safetensors")
            try Data(Self.fileBytes(header: header, data: [0, 0, 0, 0])).write(to: url)
            XCTAssertThrowsError(try SafetensorsFile(contentsOf: url)) { error in
                XCTAssertTrue("\(error)".contains("huge.safetensors"), "\(error)")
                XCTAssertTrue("\(error)".contains("\"w\""), "\(error)")
            }
        }
        XCTAssertLessThan(peakResidentBytes() - before, 64 << 20)
    }

    // MARK: - Model directories

    /// A tiny model directory (config.json + model.safetensors) with its config or its weights
    /// file mutated, loaded by `ModelDirectory.load`: shapes must agree with the config before
    /// the flat buffer is allocated.
    func testMutatedModelDirectories() throws {
        let config = LlamaConfig(hiddenSize: 8, intermediateSize: 16, numHiddenLayers: 1, numAttentionHeads: 2,
                                 numKeyValueHeads: 1, vocabSize: 12, tieWordEmbeddings: false, eosTokenId: 11)
        let layout = ParameterLayout(config: config)
        let weights = (0..<layout.totalCount).map { Float($0 % 17) * 0.125 - 1 }
        let source = directory.appendingPathComponent("source")
        try ModelDirectory.save(config: config, weights: weights, to: source, dtype: .fp16)
        let validConfig = [UInt8](try Data(contentsOf: source.appendingPathComponent("config.json")))
        let configDocument = FuzzJSON.parse(validConfig)!
        let validWeights = Self.split([UInt8](try Data(contentsOf: source.appendingPathComponent("model.safetensors"))))
        // The same weights in shards of about 300 bytes, with model.safetensors.index.json.
        let sharded = directory.appendingPathComponent("sharded")
        try ModelDirectory.save(config: config, weights: weights, to: sharded, dtype: .fp32, maxShardBytes: 300)
        let shardFiles = try FileManager.default.contentsOfDirectory(atPath: sharded.path).filter { $0.hasSuffix(".safetensors") }
        let validIndex = [UInt8](try Data(contentsOf: sharded.appendingPathComponent("model.safetensors.index.json")))
        let indexDocument = FuzzJSON.parse(validIndex)!
        XCTAssertGreaterThan(shardFiles.count, 2)
        var mutator = Mutator(seed: 0x5EED_D12)
        let run = FuzzRun(kind: "model directory")
        for index in 0..<1_000 {
            let caseDirectory = directory.appendingPathComponent("model\(index)")
            try FileManager.default.createDirectory(at: caseDirectory, withIntermediateDirectories: true)
            var configBytes = validConfig
            var weightBytes = Self.fileBytes(header: validWeights.header.bytes, data: validWeights.data)
            let description: String
            if mutator.chance(1, in: 5) {
                // A sharded directory: the index or one shard mutated.
                var indexBytes = validIndex
                let mutatedShard = mutator.pick(shardFiles)
                var shardBytes = [UInt8](try Data(contentsOf: sharded.appendingPathComponent(mutatedShard)))
                if mutator.chance(1, in: 2) {
                    if mutator.chance(3, in: 4) {
                        let result = mutator.mutateJSON(indexDocument)
                        (indexBytes, description) = (result.json.bytes, "index: " + result.description)
                    } else {
                        let result = mutator.mutateBytes(validIndex)
                        (indexBytes, description) = (result.bytes, "index bytes: " + result.description)
                    }
                } else {
                    let result = mutatedSafetensors(Self.split(shardBytes), others: [], &mutator)
                    (shardBytes, description) = (result.0, "shard \(mutatedShard): " + result.1)
                }
                try Data(configBytes).write(to: caseDirectory.appendingPathComponent("config.json"))
                try Data(indexBytes).write(to: caseDirectory.appendingPathComponent("model.safetensors.index.json"))
                for shard in shardFiles {
                    let bytes = shard == mutatedShard ? shardBytes : [UInt8](try Data(contentsOf: sharded.appendingPathComponent(shard)))
                    try Data(bytes).write(to: caseDirectory.appendingPathComponent(shard))
                }
                run.run(description, fileName: caseDirectory.lastPathComponent) {
                    let (loaded, flat) = try ModelDirectory.load(caseDirectory)
                    if flat.count != ParameterLayout(config: loaded).totalCount { run.fail("sharded: \(flat.count) weights loaded") }
                }
                try? FileManager.default.removeItem(at: caseDirectory)
                continue
            }
            if mutator.chance(1, in: 3) {
                let result = mutator.mutateJSON(configDocument)
                (configBytes, description) = (result.json.bytes, "config: " + result.description)
            } else {
                let result = mutatedSafetensors(validWeights, others: [], &mutator)
                (weightBytes, description) = (result.0, "weights: " + result.1)
            }
            try Data(configBytes).write(to: caseDirectory.appendingPathComponent("config.json"))
            try Data(weightBytes).write(to: caseDirectory.appendingPathComponent("model.safetensors"))
            run.run(description, fileName: caseDirectory.lastPathComponent) {
                let (loaded, flat) = try ModelDirectory.load(caseDirectory)
                if flat.count != ParameterLayout(config: loaded).totalCount || flat.contains(where: { !$0.isFinite }) {
                    run.fail("loaded \(flat.count) weights for a layout of \(ParameterLayout(config: loaded).totalCount)")
                }
            }
            try? FileManager.default.removeItem(at: caseDirectory)
        }
        print(run.finish())
        XCTAssertEqual(run.failures, [], run.failures.prefix(20).joined(separator: "\n"))
        XCTAssertGreaterThan(run.loaded, 50)
        XCTAssertGreaterThan(run.refused, 300)
    }
}
