import Foundation
import Kernels
import TestSupport
import XCTest
@testable import Llama

/// The load path of large tensors: conversion straight from the mapped file, in blocks spread
/// over two threads, for every float dtype and for unaligned data; NaN/infinity refused with the
/// file, tensor and first bad index; the writer's staged F16/BF16 conversion; huge-page arrays.
final class SafetensorsLoadingTests: XCTestCase {
    /// Elements enough for two workers (`Parallel.forChunks` splits from 2 x 2^18) and many blocks.
    static let count = 600_001

    override func setUp() {
        super.setUp()
        let threads = BLAS.threads
        BLAS.threads = 2
        addTeardownBlock { BLAS.threads = threads }
    }

    /// Deterministic values of every magnitude class F16 and BF16 have (subnormal to large).
    static func values(_ count: Int) -> [Float] {
        var random = TestRandom(seed: 11)
        return (0..<count).map { i in
            let scale: Float = [1e-6, 1e-3, 1, 300, 60_000][i % 5]
            return random.uniform(scale)
        }
    }

    /// A safetensors file holding one tensor `name` of `dtype` with raw little-endian `payload`
    /// bytes; `oddHeader` leaves the data region on an odd address.
    func rawFile(name: String, dtype: String, count: Int, payload: Data, oddHeader: Bool = false, in directory: URL) throws -> URL {
        var header = "{\"\(name)\":{\"dtype\":\"\(dtype)\",\"shape\":[\(count)],\"data_offsets\":[0,\(payload.count)]}}"
        if oddHeader, header.utf8.count % 2 == 0 { header += " " }
        if !oddHeader { while (8 + header.utf8.count) % 8 != 0 { header += " " } }
        var data = Data()
        var length = UInt64(header.utf8.count).littleEndian
        data.append(Data(bytes: &length, count: 8))
        data.append(Data(header.utf8))
        data.append(payload)
        let url = directory.appendingPathComponent("\(dtype)-\(oddHeader ? "odd" : "even").safetensors")
        try data.write(to: url)
        return url
    }

    func bytes<T>(_ values: [T]) -> Data { values.withUnsafeBytes { Data($0) } }

    func read(_ url: URL, _ name: String, requireFinite: Bool = false) throws -> [Float] {
        let file = try SafetensorsFile(contentsOf: url)
        var out = [Float](repeating: .nan, count: file[name]!.elementCount)
        try out.withUnsafeMutableBufferPointer { try file.readFloats(name, requireFinite: requireFinite, into: $0) }
        return out
    }

    func testEveryFloatDTypeConvertsExactlyAlignedAndUnaligned() throws {
        let directory = try freshTemporaryDirectory()
        let values = Self.values(Self.count)
        // Oracles: Swift's own Float16 and Double conversions; BF16 = the top half of the float bits.
        let halves = values.map { Float16($0).bitPattern }
        let brains = values.map { UInt16($0.bitPattern >> 16) }
        let doubles = values.map { Double($0) * (1 + 1e-12) }
        let cases: [(String, Data, [Float])] = [
            ("F32", bytes(values), values),
            ("F16", bytes(halves), halves.map { Float(Float16(bitPattern: $0)) }),
            ("BF16", bytes(brains), brains.map { Float(bitPattern: UInt32($0) << 16) }),
            ("F64", bytes(doubles), doubles.map { Float($0) }),
        ]
        for (dtype, payload, expected) in cases {
            for odd in [false, true] {
                let url = try rawFile(name: "w", dtype: dtype, count: Self.count, payload: payload, oddHeader: odd, in: directory)
                let got = try read(url, "w", requireFinite: true)
                XCTAssertEqual(got.map(\.bitPattern), expected.map(\.bitPattern), "\(dtype) odd header \(odd)")
            }
        }
    }

    func testNonFiniteValuesAreRefusedAtTheFirstIndex() throws {
        let directory = try freshTemporaryDirectory()
        var values = Self.values(Self.count)
        // One bad value in each worker's half: the first one is named.
        values[Self.count - 7] = .nan
        values[123_457] = .infinity
        let url = try rawFile(name: "model.layers.0.mlp.up_proj.weight", dtype: "F32", count: Self.count, payload: bytes(values), in: directory)
        XCTAssertThrowsError(try read(url, "model.layers.0.mlp.up_proj.weight", requireFinite: true)) { error in
            guard let error = error as? SafetensorsError else { return XCTFail("\(error)") }
            XCTAssertEqual(error.kind, .nonFinite)
            XCTAssertTrue(error.description.contains(url.path), error.description)
            XCTAssertTrue(error.description.contains("model.layers.0.mlp.up_proj.weight"), error.description)
            XCTAssertTrue(error.description.contains("value inf at index 123457"), error.description)
        }
        // Without the check the values come through as stored.
        XCTAssertTrue(try read(url, "model.layers.0.mlp.up_proj.weight")[Self.count - 7].isNaN)

        let brains = [UInt16](repeating: 0x3F80, count: 70_000) + [0x7F80] + [UInt16](repeating: 0x3F80, count: 10)
        let infinite = try rawFile(name: "b", dtype: "BF16", count: brains.count, payload: bytes(brains), oddHeader: true, in: directory)
        XCTAssertThrowsError(try read(infinite, "b", requireFinite: true)) { error in
            XCTAssertTrue("\(error)".contains("at index 70000"), "\(error)")
        }
    }

    func testModelDirectoryRefusesATruncatedWeightsFileNamingIt() throws {
        let directory = try freshTemporaryDirectory()
        let config = LlamaPreset.tiny.config
        try ModelDirectory.save(config: config, weights: WeightInitializer(seed: 3).weights(for: config), to: directory, dtype: .bf16)
        let loaded = try ModelDirectory.load(directory)
        XCTAssertEqual(loaded.weights.count, ParameterLayout(config: config).totalCount)
        let weightsURL = directory.appendingPathComponent(SafetensorsArchive.singleFileName)
        let full = try Data(contentsOf: weightsURL)
        try full.prefix(full.count - 100).write(to: weightsURL)
        XCTAssertThrowsError(try ModelDirectory.load(directory)) { error in
            guard let error = error as? SafetensorsError else { return XCTFail("\(error)") }
            XCTAssertEqual(error.kind, .badOffsets)
            XCTAssertTrue(error.description.contains(weightsURL.path), error.description)
            XCTAssertTrue(error.description.contains("truncated"), error.description)
        }
    }

    func testWriterStagesHalfConversionAcrossItsBuffer() throws {
        // More elements than one staging buffer holds, so the conversion runs in several writes.
        let directory = try freshTemporaryDirectory()
        let count = SafetensorsWriter.stagingCount + 1_001
        let values = Self.values(count)
        for dtype in [SafetensorsDType.F16, .BF16, .F32] {
            let url = directory.appendingPathComponent("\(dtype.rawValue).safetensors")
            try values.withUnsafeBufferPointer { buffer in
                try SafetensorsWriter.write([SafetensorsTensorSource(name: "w", shape: [count], values: buffer)], dtype: dtype, to: url)
            }
            let expected: [Float]
            switch dtype {
            case .F16: expected = values.map { Float(Float16($0)) }
            case .BF16:
                expected = values.map { value in
                    let bits = value.bitPattern
                    return Float(bitPattern: (bits &+ 0x7FFF &+ ((bits >> 16) & 1)) & 0xFFFF_0000)
                }
            default: expected = values
            }
            XCTAssertEqual(try read(url, "w").map(\.bitPattern), expected.map(\.bitPattern), dtype.rawValue)
        }
        let missing = directory.appendingPathComponent("no-such-directory/w.safetensors")
        XCTAssertThrowsError(try values.withUnsafeBufferPointer { buffer in
            try SafetensorsWriter.write([SafetensorsTensorSource(name: "w", shape: [count], values: buffer)], dtype: .F32, to: missing)
        }) { error in
            XCTAssertEqual((error as? SafetensorsError)?.kind, .writeFailed, "\(error)")
            XCTAssertTrue("\(error)".contains("w.safetensors"), "\(error)")
        }
    }

    func testHugePageArraysHoldWhatWasWritten() {
        let count = 3 * HugePages.size / 4 + 5
        let filled = HugePages.floats(count: count) { buffer in
            for i in buffer.indices { buffer[i] = Float(i % 1000) }
        }
        XCTAssertEqual(filled.count, count)
        XCTAssertEqual(filled[count - 1], Float((count - 1) % 1000))
        XCTAssertEqual(HugePages.floats(repeating: 2.5, count: count).allSatisfy { $0 == 2.5 }, true)
        XCTAssertEqual(HugePages.floats(repeating: 1, count: 0), [])
    }
}
