import Foundation
import TestSupport
import XCTest
@testable import Llama

/// safetensors read/write: round trips in F32/F16/BF16, sharded sets, and every malformed
/// file giving an error (never a crash) that names the file and tensor.
final class SafetensorsTests: XCTestCase {
    // MARK: - Helpers

    /// Values that exercise rounding: ordinary, tiny (subnormal in F16), signed zero, ties.
    static let sampleValues: [Float] = {
        var values: [Float] = [0, -0.0, 1, -1, 0.1, 1e-3, -2.5e-5, 3e-8, 65504, -65504, 1.0009765625, 1.00048828125,
                               Float(bitPattern: 0x3F80_8000), Float(bitPattern: 0x3F81_8000), 1e-30, 3.14159265]
        var random = TestRandom(seed: 7)
        for _ in 0..<(64 - values.count) { values.append(random.uniform() * 8) }
        return values
    }()

    /// Writes `tensors` (name, shape, values) and returns the file URL.
    func writeFile(_ tensors: [(String, [Int], [Float])], dtype: SafetensorsDType, in directory: URL, name: String = "t.safetensors") throws -> URL {
        let url = directory.appendingPathComponent(name)
        try withSources(tensors) { try SafetensorsWriter.write($0, dtype: dtype, to: url) }
        return url
    }

    func withSources<R>(_ tensors: [(String, [Int], [Float])], _ body: ([SafetensorsTensorSource]) throws -> R) rethrows -> R {
        // One flat array keeps every tensor's values alive for the duration of `body`.
        let flat = tensors.flatMap(\.2)
        return try flat.withUnsafeBufferPointer { buffer in
            var offset = 0
            let sources = tensors.map { tensor -> SafetensorsTensorSource in
                defer { offset += tensor.2.count }
                return SafetensorsTensorSource(name: tensor.0, shape: tensor.1,
                                               values: UnsafeBufferPointer(rebasing: buffer[offset..<(offset + tensor.2.count)]))
            }
            return try body(sources)
        }
    }

    /// A file with a hand-written header followed by `dataBytes` zero bytes.
    func rawFile(header: String, headerLength: UInt64? = nil, dataBytes: Int, in directory: URL) throws -> URL {
        var data = Data()
        var length = (headerLength ?? UInt64(header.utf8.count)).littleEndian
        data.append(Data(bytes: &length, count: 8))
        data.append(Data(header.utf8))
        data.append(Data(count: dataBytes))
        let url = directory.appendingPathComponent("raw-\(UUID().uuidString.prefix(6)).safetensors")
        try data.write(to: url)
        return url
    }

    func assertError(_ kind: SafetensorsError.Kind, tensor: String? = nil, file: URL,
                     _ body: () throws -> Void, line: UInt = #line) {
        XCTAssertThrowsError(try body(), line: line) { error in
            guard let error = error as? SafetensorsError else { return XCTFail("not a SafetensorsError: \(error)", line: line) }
            XCTAssertEqual(error.kind, kind, error.description, line: line)
            XCTAssertTrue(error.description.contains(file.lastPathComponent), "file not named: \(error)", line: line)
            if let tensor { XCTAssertTrue(error.description.contains(tensor), "tensor not named: \(error)", line: line) }
        }
    }

    // MARK: - Round trips

    func testF32RoundTripIsBitExact() throws {
        let directory = try freshTemporaryDirectory()
        let values = Self.sampleValues
        let url = try writeFile([("a.weight", [8, 8], values), ("b", [3], [1, 2, 3]), ("empty", [0, 4], [])], dtype: .F32, in: directory)
        let file = try SafetensorsFile(contentsOf: url)
        XCTAssertEqual(file.metadata, ["format": "pt"])
        XCTAssertEqual(file["a.weight"]?.shape, [8, 8])
        XCTAssertEqual(file["a.weight"]?.dtype, .F32)
        XCTAssertEqual(try file.floats("a.weight").map(\.bitPattern), values.map(\.bitPattern))
        XCTAssertEqual(try file.floats("b"), [1, 2, 3])
        XCTAssertEqual(try file.floats("empty"), [])
        // The header is padded so the data region starts on an 8-byte boundary.
        XCTAssertEqual(file.tensors.map(\.byteRange.lowerBound).min()! % 8, 0)
    }

    func testF16RoundTripRoundsToNearestEven() throws {
        let directory = try freshTemporaryDirectory()
        let values = Self.sampleValues
        let file = try SafetensorsFile(contentsOf: try writeFile([("w", [64], values)], dtype: .F16, in: directory))
        XCTAssertEqual(file["w"]?.dtype, .F16)
        let expected = values.map { Float(Float16($0)) }   // Swift's own conversion: the oracle
        XCTAssertEqual(try file.floats("w").map(\.bitPattern), expected.map(\.bitPattern))
    }

    func testBF16RoundTripRoundsToNearestEven() throws {
        let directory = try freshTemporaryDirectory()
        let values = Self.sampleValues
        let file = try SafetensorsFile(contentsOf: try writeFile([("w", [4, 16], values)], dtype: .BF16, in: directory))
        XCTAssertEqual(try file.floats("w").map(\.bitPattern), values.map { bfloat16RoundTrip($0).bitPattern })
        // 1 + 2^-8 is a tie between bf16 1 and 1 + 2^-7: rounds to even (1).
        XCTAssertEqual(bfloat16RoundTrip(Float(bitPattern: 0x3F80_8000)), 1)
    }

    /// Round to nearest even on the top 16 bits: the BF16 oracle.
    func bfloat16RoundTrip(_ value: Float) -> Float {
        let bits = value.bitPattern
        let rounded = bits &+ 0x7FFF &+ ((bits >> 16) & 1)
        return Float(bitPattern: rounded & 0xFFFF_0000)
    }

    func testReadsUnalignedF16Data() throws {
        // A writer that does not pad its header leaves F16 data on an odd address.
        let directory = try freshTemporaryDirectory()
        let header = #"{"h":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}"# + " "   // odd length
        var data = Data()
        var length = UInt64(header.utf8.count).littleEndian
        data.append(Data(bytes: &length, count: 8))
        data.append(Data(header.utf8))
        data.append(contentsOf: [0x00, 0x3C, 0x00, 0xC0])   // 1.0, -2.0
        let url = directory.appendingPathComponent("odd.safetensors")
        try data.write(to: url)
        XCTAssertEqual(try SafetensorsFile(contentsOf: url).floats("h"), [1, -2])
    }

    func testWriteRefusesNonFiniteAndOverflow() throws {
        let directory = try freshTemporaryDirectory()
        let url = directory.appendingPathComponent("bad.safetensors")
        assertError(.nonFinite, tensor: "nan.weight", file: url) {
            try withSources([("nan.weight", [2], [1, .nan])]) { try SafetensorsWriter.write($0, dtype: .F32, to: url) }
        }
        assertError(.nonFinite, tensor: "big", file: url) {
            try withSources([("big", [1], [70_000])]) { try SafetensorsWriter.write($0, dtype: .F16, to: url) }
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: url.path), "nothing left under the final name")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        XCTAssertEqual(leftovers, [], "temporary files are cleaned up")
    }

    // MARK: - Sharded sets

    func testShardedWriteAndRead() throws {
        let directory = try freshTemporaryDirectory()
        let tensors: [(String, [Int], [Float])] = (0..<5).map { i in ("layer.\(i).weight", [4, 4], (0..<16).map { Float(i * 16 + $0) }) }
        let names = try withSources(tensors) {
            try SafetensorsWriter.writeSharded($0, dtype: .F32, maxShardBytes: 150, directory: directory)
        }
        XCTAssertEqual(names.count, 3, "two 64-byte tensors per 150-byte shard")
        XCTAssertEqual(names.first, "model-00001-of-00003.safetensors")
        let archive = try SafetensorsArchive(directory: directory)
        XCTAssertEqual(archive.files.count, 3)
        XCTAssertEqual(archive.tensorNames, tensors.map(\.0).sorted())
        for (name, shape, values) in tensors {
            var read = [Float](repeating: -1, count: values.count)
            try read.withUnsafeMutableBufferPointer { try archive.readFloats(name, expectedShape: shape, into: $0) }
            XCTAssertEqual(read, values)
        }
        let index = try JSONDecoder().decode(JSONValue.self, from: Data(contentsOf: directory.appendingPathComponent("model.safetensors.index.json")))
        XCTAssertEqual(index.objectValue?["metadata"]?.objectValue?["total_size"], .integer(5 * 64))
    }

    func testShardIndexErrors() throws {
        let directory = try freshTemporaryDirectory()
        _ = try writeFile([("x", [1], [1])], dtype: .F32, in: directory, name: "shard-a.safetensors")
        let indexURL = directory.appendingPathComponent("model.safetensors.index.json")

        try Data(#"{"weight_map": {"x": "shard-a.safetensors", "y": "shard-a.safetensors"}}"#.utf8).write(to: indexURL)
        assertError(.missingTensor, tensor: "y", file: directory.appendingPathComponent("shard-a.safetensors")) {
            _ = try SafetensorsArchive(directory: directory)
        }
        try Data(#"{"weight_map": {"x": "../shard-a.safetensors"}}"#.utf8).write(to: indexURL)
        assertError(.badIndex, tensor: "x", file: indexURL) { _ = try SafetensorsArchive(directory: directory) }
        try Data(#"{"weight_map": {"x": "absent.safetensors"}}"#.utf8).write(to: indexURL)
        assertError(.unreadable, file: directory.appendingPathComponent("absent.safetensors")) { _ = try SafetensorsArchive(directory: directory) }
        try Data(#"{"metadata": {}}"#.utf8).write(to: indexURL)
        assertError(.badIndex, file: indexURL) { _ = try SafetensorsArchive(directory: directory) }
    }

    // MARK: - Malformed files

    func testTruncatedFile() throws {
        let directory = try freshTemporaryDirectory()
        let url = try writeFile([("w", [16], Array(repeating: 1, count: 16))], dtype: .F32, in: directory)
        let full = try Data(contentsOf: url)
        try full.prefix(full.count - 5).write(to: url)
        assertError(.badOffsets, tensor: "w", file: url) { _ = try SafetensorsFile(contentsOf: url) }
        try full.prefix(5).write(to: url)
        assertError(.truncated, file: url) { _ = try SafetensorsFile(contentsOf: url) }
        try Data().write(to: url)
        assertError(.truncated, file: url) { _ = try SafetensorsFile(contentsOf: url) }
    }

    func testHeaderLengthPastTheEnd() throws {
        let directory = try freshTemporaryDirectory()
        let url = try rawFile(header: "{}", headerLength: 1 << 40, dataBytes: 0, in: directory)
        assertError(.headerLength, file: url) { _ = try SafetensorsFile(contentsOf: url) }
        let justPast = try rawFile(header: "{}", headerLength: 3, dataBytes: 0, in: directory)
        assertError(.headerLength, file: justPast) { _ = try SafetensorsFile(contentsOf: justPast) }
    }

    func testHeaderLengthAboveCap() throws {
        // A sparse file larger than the cap whose header claims more than the cap.
        let directory = try freshTemporaryDirectory()
        let url = try rawFile(header: "{}", headerLength: UInt64(SafetensorsFile.maximumHeaderLength + 1), dataBytes: 0, in: directory)
        let handle = try FileHandle(forWritingTo: url)
        try handle.truncate(atOffset: UInt64(SafetensorsFile.maximumHeaderLength + 64))
        try handle.close()
        assertError(.headerLength, file: url) { _ = try SafetensorsFile(contentsOf: url) }
    }

    func testMalformedHeaderJSON() throws {
        let directory = try freshTemporaryDirectory()
        for header in ["{\"w\": ", "[1, 2]", #"{"w": 3}"#, #"{"w": {"dtype": "F32", "shape": [1]}}"#,
                       #"{"__metadata__": {"format": 1}}"#, #"{"w": {"shape": [1], "data_offsets": [0, 4]}}"#] {
            let url = try rawFile(header: header, dataBytes: 4, in: directory)
            assertError(.malformedHeader, file: url) { _ = try SafetensorsFile(contentsOf: url) }
        }
    }

    func testUnknownAndWrongDType() throws {
        let directory = try freshTemporaryDirectory()
        let unknown = try rawFile(header: #"{"w": {"dtype": "F33", "shape": [1], "data_offsets": [0, 4]}}"#, dataBytes: 4, in: directory)
        assertError(.unsupportedDType, tensor: "w", file: unknown) { _ = try SafetensorsFile(contentsOf: unknown) }
        // A valid integer tensor asked for as float weights.
        let integers = try rawFile(header: #"{"ids": {"dtype": "I64", "shape": [2], "data_offsets": [0, 16]}}"#, dataBytes: 16, in: directory)
        let file = try SafetensorsFile(contentsOf: integers)
        XCTAssertEqual(try file.integers("ids"), [0, 0])
        assertError(.unsupportedDType, tensor: "ids", file: integers) { _ = try file.floats("ids") }
    }

    func testShapeAndOffsetErrors() throws {
        let directory = try freshTemporaryDirectory()
        let cases: [(String, SafetensorsError.Kind)] = [
            (#"{"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}"#, .badShape),
            (#"{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}"#, .badShape),
            (#"{"w": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]}}"#, .badShape),
            (#"{"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}}"#, .badOffsets),
            (#"{"w": {"dtype": "F32", "shape": [1], "data_offsets": [-4, 0]}}"#, .badOffsets),
            (#"{"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}"#, .badOffsets),   // past the 8 data bytes
            // 10^15 elements: refused from the header alone, nothing allocated.
            (#"{"w": {"dtype": "F32", "shape": [1000000000000000], "data_offsets": [0, 8]}}"#, .badShape),
            (#"{"w": {"dtype": "F32", "shape": [1000000000000000], "data_offsets": [0, 4000000000000000]}}"#, .badOffsets),
            (#"{"w": {"dtype": "F64", "shape": [4611686018427387904, 4], "data_offsets": [0, 8]}}"#, .badShape),   // overflows Int
        ]
        for (header, kind) in cases {
            let url = try rawFile(header: header, dataBytes: 8, in: directory)
            assertError(kind, tensor: "w", file: url) { _ = try SafetensorsFile(contentsOf: url) }
        }
        let overlapping = try rawFile(
            header: #"{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}"#,
            dataBytes: 8, in: directory)
        assertError(.badOffsets, tensor: "b", file: overlapping) { _ = try SafetensorsFile(contentsOf: overlapping) }
    }

    func testMissingTensorAndShapeMismatch() throws {
        let directory = try freshTemporaryDirectory()
        let url = try writeFile([("w", [2, 3], [1, 2, 3, 4, 5, 6])], dtype: .F32, in: directory)
        let file = try SafetensorsFile(contentsOf: url)
        assertError(.missingTensor, tensor: "v", file: url) { _ = try file.floats("v") }
        var buffer = [Float](repeating: 0, count: 6)
        assertError(.shapeMismatch, tensor: "w", file: url) {
            try buffer.withUnsafeMutableBufferPointer { try file.readFloats("w", expectedShape: [3, 2], into: $0) }
        }
        var small = [Float](repeating: 0, count: 5)
        assertError(.shapeMismatch, tensor: "w", file: url) {
            try small.withUnsafeMutableBufferPointer { try file.readFloats("w", into: $0) }
        }
        let absent = directory.appendingPathComponent("absent.safetensors")
        assertError(.unreadable, file: absent) { _ = try SafetensorsFile(contentsOf: absent) }
    }

    /// Random truncations and byte corruptions of a valid file: every outcome is a
    /// `SafetensorsError` or a successful read, never a crash or a hang.
    func testCorruptedFilesNeverCrash() throws {
        let directory = try freshTemporaryDirectory()
        let url = try writeFile([("a", [3, 4], Array(Self.sampleValues.prefix(12))), ("b", [5], [1, 2, 3, 4, 5]),
                                 ("c", [2, 2], [1, 2, 3, 4])], dtype: .F16, in: directory)
        let original = try Data(contentsOf: url)
        let headerEnd = 8 + Int(original.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        var random = TestRandom(seed: 11)
        var outcomes = (errors: 0, reads: 0)
        for trial in 0..<300 {
            var corrupted = original
            if trial % 3 == 0 {
                corrupted = corrupted.prefix(Int(random.next() % UInt64(original.count)))
            } else {
                for _ in 0..<(1 + Int(random.next() % 3)) {
                    // Mostly the header (length bytes included), where the structure lives.
                    let position = Int(random.next() % UInt64(trial % 3 == 1 ? headerEnd : original.count))
                    corrupted[position] = UInt8(truncatingIfNeeded: random.next())
                }
            }
            let corruptURL = directory.appendingPathComponent("corrupt.safetensors")
            try corrupted.write(to: corruptURL)
            do {
                let file = try SafetensorsFile(contentsOf: corruptURL)
                for tensor in file.tensors {
                    if tensor.dtype.isReadableAsFloat { _ = try file.floats(tensor.name) }
                    if tensor.dtype.isInteger { _ = try file.integers(tensor.name) }
                }
                outcomes.reads += 1
            } catch is SafetensorsError {
                outcomes.errors += 1
            }
        }
        XCTAssertGreaterThan(outcomes.errors, 100, "most corruptions are detected")
        XCTAssertGreaterThan(outcomes.reads, 0, "corrupted tensor bytes (not structure) still read")
    }
}
