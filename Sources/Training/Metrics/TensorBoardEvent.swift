import Foundation

/// Encodes TensorBoard `Event` protobufs and frames them as TFRecord records, by hand
/// (no protobuf package).
///
/// Event:   wall_time double = 1, step int64 = 2, file_version string = 3, summary Summary = 5.
/// Summary: repeated Value value = 1.   Value: tag string = 1, simple_value float = 2.
/// Record:  [uint64 length LE][uint32 masked CRC32C of length][data][uint32 masked CRC32C of data].
public enum TensorBoardEvent {
    // MARK: - Events

    /// The first event of every file: names the format version.
    public static func fileVersionEvent(wallTime: Double) -> [UInt8] {
        var event = ProtobufWriter()
        event.writeDouble(field: 1, wallTime)
        event.writeString(field: 3, "brain.Event:2")
        return event.bytes
    }

    /// An event carrying scalar summaries (`simple_value`, float32) for one step.
    public static func scalarsEvent(wallTime: Double, step: Int, scalars: [(tag: String, value: Float)]) -> [UInt8] {
        var summary = ProtobufWriter()
        for scalar in scalars {
            var value = ProtobufWriter()
            value.writeString(field: 1, scalar.tag)
            value.writeFloat(field: 2, scalar.value)
            summary.writeMessage(field: 1, value.bytes)
        }
        var event = ProtobufWriter()
        event.writeDouble(field: 1, wallTime)
        event.writeVarintField(field: 2, UInt64(bitPattern: Int64(step)))
        event.writeMessage(field: 5, summary.bytes)
        return event.bytes
    }

    // MARK: - Records

    /// Frames `data` as one TFRecord record.
    public static func record(_ data: [UInt8]) -> [UInt8] {
        var length: [UInt8] = []
        appendLittleEndian(UInt64(data.count), to: &length)
        var record = length
        appendLittleEndian(CRC32C.masked(length), to: &record)
        record += data
        appendLittleEndian(CRC32C.masked(data), to: &record)
        return record
    }

    static func appendLittleEndian<Integer: FixedWidthInteger>(_ value: Integer, to bytes: inout [UInt8]) {
        var remaining = value.littleEndian
        withUnsafeBytes(of: &remaining) { bytes.append(contentsOf: $0) }
    }
}

// MARK: - Protobuf wire format

/// Minimal protobuf writer: varint (wire type 0), fixed64 (1), length-delimited (2), fixed32 (5).
struct ProtobufWriter {
    private(set) var bytes: [UInt8] = []

    mutating func writeVarint(_ value: UInt64) {
        var remaining = value
        while remaining >= 0x80 {
            bytes.append(UInt8(remaining & 0x7F) | 0x80)
            remaining >>= 7
        }
        bytes.append(UInt8(remaining))
    }

    mutating func writeKey(field: Int, wireType: UInt64) { writeVarint(UInt64(field) << 3 | wireType) }

    mutating func writeVarintField(field: Int, _ value: UInt64) {
        writeKey(field: field, wireType: 0)
        writeVarint(value)
    }

    mutating func writeDouble(field: Int, _ value: Double) {
        writeKey(field: field, wireType: 1)
        TensorBoardEvent.appendLittleEndian(value.bitPattern, to: &bytes)
    }

    mutating func writeFloat(field: Int, _ value: Float) {
        writeKey(field: field, wireType: 5)
        TensorBoardEvent.appendLittleEndian(value.bitPattern, to: &bytes)
    }

    mutating func writeMessage(field: Int, _ message: [UInt8]) {
        writeKey(field: field, wireType: 2)
        writeVarint(UInt64(message.count))
        bytes += message
    }

    mutating func writeString(field: Int, _ text: String) { writeMessage(field: field, Array(text.utf8)) }
}
