import Foundation
import XCTest
@testable import Training

/// Reads TFRecord event files independently of the writer: its own bitwise CRC-32C and
/// protobuf decoder, so a shared bug cannot hide.
struct EventFileReader {
    struct Event: Equatable {
        var wallTime: Double?
        var step: Int64 = 0
        var fileVersion: String?
        var scalars: [Scalar] = []
    }

    struct Scalar: Equatable {
        var tag: String
        var value: Float
    }

    struct Failure: Error, CustomStringConvertible { let description: String }

    /// Bit-at-a-time CRC-32C (Castagnoli, reflected 0x82F63B78).
    static func crc32c(_ bytes: ArraySlice<UInt8>) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
        }
        return ~crc
    }

    static func masked(_ crc: UInt32) -> UInt32 { ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8 }

    static func littleEndian<T: FixedWidthInteger>(_ bytes: [UInt8], at offset: Int, as: T.Type) -> T {
        var value: T = 0
        for index in 0..<MemoryLayout<T>.size { value |= T(bytes[offset + index]) << (8 * index) }
        return value
    }

    /// Splits the file into records, checking both CRCs of each.
    static func records(_ bytes: [UInt8]) throws -> [[UInt8]] {
        var records: [[UInt8]] = [], offset = 0
        while offset < bytes.count {
            guard offset + 12 <= bytes.count else { throw Failure(description: "truncated header at \(offset)") }
            let length = Int(littleEndian(bytes, at: offset, as: UInt64.self))
            let lengthCRC = littleEndian(bytes, at: offset + 8, as: UInt32.self)
            guard lengthCRC == masked(crc32c(bytes[offset..<offset + 8])) else {
                throw Failure(description: "length CRC mismatch at \(offset)")
            }
            let dataStart = offset + 12
            guard dataStart + length + 4 <= bytes.count else { throw Failure(description: "truncated record at \(offset)") }
            let dataCRC = littleEndian(bytes, at: dataStart + length, as: UInt32.self)
            guard dataCRC == masked(crc32c(bytes[dataStart..<dataStart + length])) else {
                throw Failure(description: "data CRC mismatch at \(offset)")
            }
            records.append(Array(bytes[dataStart..<dataStart + length]))
            offset = dataStart + length + 4
        }
        return records
    }

    /// Protobuf fields: (field number, wire type, varint value or payload bytes).
    static func fields(_ bytes: [UInt8]) throws -> [(field: Int, wireType: Int, varint: UInt64, payload: [UInt8])] {
        var result: [(Int, Int, UInt64, [UInt8])] = [], offset = 0
        func varint() throws -> UInt64 {
            var value: UInt64 = 0, shift: UInt64 = 0
            while true {
                guard offset < bytes.count else { throw Failure(description: "truncated varint") }
                let byte = bytes[offset]
                offset += 1
                value |= UInt64(byte & 0x7F) << shift
                if byte < 0x80 { return value }
                shift += 7
            }
        }
        while offset < bytes.count {
            let key = try varint()
            let field = Int(key >> 3), wireType = Int(key & 7)
            switch wireType {
            case 0: result.append((field, 0, try varint(), []))
            case 1: result.append((field, 1, 0, Array(bytes[offset..<offset + 8]))); offset += 8
            case 5: result.append((field, 5, 0, Array(bytes[offset..<offset + 4]))); offset += 4
            case 2:
                let length = Int(try varint())
                result.append((field, 2, 0, Array(bytes[offset..<offset + length])))
                offset += length
            default: throw Failure(description: "unexpected wire type \(wireType)")
            }
        }
        return result
    }

    static func events(_ url: URL) throws -> [Event] {
        try records(Array(try Data(contentsOf: url))).map { data in
            var event = Event()
            for field in try fields(data) {
                switch (field.field, field.wireType) {
                case (1, 1): event.wallTime = Double(bitPattern: littleEndian(field.payload, at: 0, as: UInt64.self))
                case (2, 0): event.step = Int64(bitPattern: field.varint)
                case (3, 2): event.fileVersion = String(decoding: field.payload, as: UTF8.self)
                case (5, 2):
                    for value in try fields(field.payload) where value.field == 1 {
                        var tag = "", number: Float = .nan
                        for part in try fields(value.payload) {
                            if part.field == 1 { tag = String(decoding: part.payload, as: UTF8.self) }
                            if part.field == 2 { number = Float(bitPattern: littleEndian(part.payload, at: 0, as: UInt32.self)) }
                        }
                        event.scalars.append(Scalar(tag: tag, value: number))
                    }
                default: throw Failure(description: "unexpected Event field \(field.field)")
                }
            }
            return event
        }
    }
}

final class TensorBoardSinkTests: XCTestCase {
    func testCRC32CMatchesPublishedCheckValues() {
        // RFC 3720 (iSCSI) appendix B.4 check values for CRC-32C.
        XCTAssertEqual(CRC32C.checksum(Array("123456789".utf8)), 0xE306_9283)
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0, count: 32)), 0x8A91_36AA)
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)), 0x62A8_AB43)
        XCTAssertEqual(CRC32C.checksum(Array(0...31) as [UInt8]), 0x46DD_794E)
        var random = SystemRandomNumberGenerator()
        let bytes = (0..<1000).map { _ in UInt8.random(in: 0...255, using: &random) }
        XCTAssertEqual(CRC32C.checksum(bytes), EventFileReader.crc32c(bytes[...]), "table and bitwise CRCs agree")
    }

    func testVarintEncodingOfLargeAndNegativeSteps() throws {
        for step in [0, 1, 127, 128, 300, 1 << 40, -1] {
            let event = TensorBoardEvent.scalarsEvent(wallTime: 1, step: step, scalars: [])
            let decoded = try EventFileReader.fields(event).first { $0.field == 2 }
            XCTAssertEqual(decoded.map { Int64(bitPattern: $0.varint) }, Int64(step))
        }
    }

    func testEventFileReadsBackWithVerifiedCRCsTagsStepsAndValues() throws {
        let directory = try makeMetricsTestDirectory(self).appendingPathComponent("tensorboard")
        var time = 1_700_000_000.25
        let sink = try TensorBoardSink(directory: directory, clock: { defer { time += 1 }; return time }, hostName: "testhost")
        XCTAssertEqual(sink.fileURL.lastPathComponent, "events.out.tfevents.1700000000.testhost")
        let steps = [1, 2, 3, 5, 10]
        for step in steps { try sink.log(step: step, metrics: sampleTRLMetrics(step: step)) }
        // Written records are on disk before close (a crash loses nothing already logged).
        XCTAssertEqual(try EventFileReader.events(sink.fileURL).count, 1 + steps.count)
        try sink.log(step: 10, metrics: [("eval_loss", 0.42)])
        try sink.close()

        let events = try EventFileReader.events(sink.fileURL)
        XCTAssertEqual(events.count, 2 + steps.count)
        XCTAssertEqual(events[0].fileVersion, "brain.Event:2")
        XCTAssertEqual(events[0].wallTime, 1_700_000_000.25)
        XCTAssertTrue(events[0].scalars.isEmpty)
        for (event, step) in zip(events.dropFirst(), steps) {
            XCTAssertEqual(event.step, Int64(step))
            XCTAssertNil(event.fileVersion)
            XCTAssertEqual(event.scalars.map(\.tag), sampleTRLMetrics(step: step).map(\.name))
            XCTAssertEqual(event.scalars.map(\.value), sampleTRLMetrics(step: step).map { Float($0.value) })
        }
        XCTAssertEqual(events.last?.step, 10)
        XCTAssertEqual(events.last?.scalars, [EventFileReader.Scalar(tag: "eval_loss", value: 0.42)])
        XCTAssertEqual(events.compactMap(\.wallTime), (0..<events.count).map { 1_700_000_000.25 + Double($0) })

        // SWIFT_DPO_KEEP_EVENTS=DIR keeps a copy for Fixtures/check_tensorboard_events.py.
        if let keep = ProcessInfo.processInfo.environment["SWIFT_DPO_KEEP_EVENTS"] {
            let target = URL(fileURLWithPath: keep)
            try? FileManager.default.removeItem(at: target)
            try FileManager.default.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
            try FileManager.default.copyItem(at: directory, to: target)
        }
    }

    func testCorruptedRecordIsDetectedByTheReader() throws {
        let directory = try makeMetricsTestDirectory(self)
        let sink = try TensorBoardSink(directory: directory, hostName: "h")
        try sink.log(step: 1, metrics: [("loss", 0.5)])
        try sink.close()
        var bytes = Array(try Data(contentsOf: sink.fileURL))
        bytes[bytes.count - 6] ^= 0x01  // inside the float of the last record
        XCTAssertThrowsError(try EventFileReader.records(bytes)) { error in
            XCTAssertTrue("\(error)".contains("data CRC mismatch"))
        }
    }
}
