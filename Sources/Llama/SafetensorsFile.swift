import CKernelSupport
import Foundation

/// One safetensors file, opened for reading.
///
/// Layout: an 8-byte little-endian header length `N`, `N` bytes of JSON header
/// (`{"__metadata__": {..}, "<name>": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ..}`,
/// offsets relative to the data region that follows the header), then the tensor bytes.
///
/// The whole header is validated before anything is allocated from what it claims: the
/// header length against the file size and a 100 MB cap, the JSON, every dtype, every shape
/// (non-negative, element count x dtype size == the byte span, no overflow), every
/// `data_offsets` pair (inside the data region, no two tensors overlapping). The file is
/// memory-mapped; tensor bytes are only touched when a tensor is read.
public final class SafetensorsFile {
    /// Where one tensor lives in the file.
    public struct TensorInfo: Sendable, Equatable {
        public let name: String
        public let dtype: SafetensorsDType
        public let shape: [Int]
        public let elementCount: Int
        /// Absolute byte range in the file.
        public let byteRange: Range<Int>
    }

    /// Header lengths above this are refused (the reference implementation's limit).
    public static let maximumHeaderLength = 100_000_000

    public let url: URL
    /// Every tensor, in file order.
    public let tensors: [TensorInfo]
    /// `__metadata__` (string to string), e.g. `["format": "pt"]`.
    public let metadata: [String: String]
    private let index: [String: Int]
    private let bytes: Data

    /// Opens and validates `url`. Throws `SafetensorsError` naming the file (and tensor).
    public init(contentsOf url: URL) throws {
        self.url = url
        let file = url.path
        do {
            bytes = try Data(contentsOf: url, options: .alwaysMapped)
        } catch {
            throw SafetensorsError(.unreadable, file: file, "cannot read the file: \(error.localizedDescription)")
        }
        let fileSize = bytes.count
        guard fileSize >= 8 else {
            throw SafetensorsError(.truncated, file: file, "\(fileSize) bytes is too short for a safetensors file (8-byte header length missing)")
        }
        let headerLength64 = bytes.withUnsafeBytes { raw in UInt64(littleEndian: raw.loadUnaligned(as: UInt64.self)) }
        guard headerLength64 <= UInt64(fileSize - 8) else {
            throw SafetensorsError(.headerLength, file: file, "header length \(headerLength64) runs past the end of the file (\(fileSize) bytes): truncated or not a safetensors file")
        }
        let headerLength = Int(headerLength64)
        guard headerLength <= Self.maximumHeaderLength else {
            throw SafetensorsError(.headerLength, file: file, "header length \(headerLength) exceeds the \(Self.maximumHeaderLength)-byte cap")
        }
        let dataStart = 8 + headerLength
        let dataSize = fileSize - dataStart

        let header: [String: JSONValue]
        do {
            let value = try JSONValue.parse(bytes.subdata(in: 8..<dataStart))
            guard let object = value.objectValue else {
                throw SafetensorsError(.malformedHeader, file: file, "header is \(value.kindDescription), not a JSON object")
            }
            header = object
        } catch let error as SafetensorsError {
            throw error
        } catch {
            throw SafetensorsError(.malformedHeader, file: file, "header is not valid JSON (\(error))")
        }

        var metadata: [String: String] = [:]
        var tensors: [TensorInfo] = []
        for (name, value) in header {
            if name == "__metadata__" {
                guard let object = value.objectValue else {
                    throw SafetensorsError(.malformedHeader, file: file, "__metadata__ is \(value.kindDescription), not an object of strings")
                }
                for (key, entry) in object {
                    guard let string = entry.stringValue else {
                        throw SafetensorsError(.malformedHeader, file: file, "__metadata__ key \"\(key)\" is \(entry.kindDescription), not a string")
                    }
                    metadata[key] = string
                }
                continue
            }
            tensors.append(try Self.tensorInfo(name: name, value: value, dataStart: dataStart, dataSize: dataSize, file: file))
        }
        tensors.sort { ($0.byteRange.lowerBound, $0.byteRange.upperBound, $0.name) < ($1.byteRange.lowerBound, $1.byteRange.upperBound, $1.name) }
        var previous: TensorInfo?
        for tensor in tensors where !tensor.byteRange.isEmpty {
            if let previous, previous.byteRange.upperBound > tensor.byteRange.lowerBound {
                throw SafetensorsError(.badOffsets, file: file, tensor: tensor.name, "data_offsets overlap those of \"\(previous.name)\"")
            }
            previous = tensor
        }
        self.tensors = tensors
        self.metadata = metadata
        var index: [String: Int] = [:]
        for (position, tensor) in tensors.enumerated() { index[tensor.name] = position }
        self.index = index
    }

    /// Validates one header entry (dtype, shape, offsets) without touching tensor data.
    private static func tensorInfo(name: String, value: JSONValue, dataStart: Int, dataSize: Int, file: String) throws -> TensorInfo {
        guard let entry = value.objectValue else {
            throw SafetensorsError(.malformedHeader, file: file, tensor: name, "header entry is \(value.kindDescription), not an object")
        }
        guard let dtypeName = entry["dtype"]?.stringValue else {
            throw SafetensorsError(.malformedHeader, file: file, tensor: name, "\"dtype\" is missing or not a string")
        }
        guard let dtype = SafetensorsDType(rawValue: dtypeName) else {
            throw SafetensorsError(.unsupportedDType, file: file, tensor: name, "unknown dtype \"\(dtypeName)\"")
        }
        guard let shapeValues = entry["shape"]?.arrayValue else {
            throw SafetensorsError(.malformedHeader, file: file, tensor: name, "\"shape\" is missing or not an array")
        }
        var shape: [Int] = []
        var elementCount = 1
        var overflow = false
        for dimensionValue in shapeValues {
            guard case .integer = dimensionValue, let dimension = dimensionValue.intValue else {
                throw SafetensorsError(.badShape, file: file, tensor: name, "shape entry \(dimensionValue.kindDescription) is not an integer")
            }
            guard dimension >= 0 else {
                throw SafetensorsError(.badShape, file: file, tensor: name, "shape \(shapeValues.compactMap(\.intValue)) has a negative dimension")
            }
            shape.append(dimension)
            let product = elementCount.multipliedReportingOverflow(by: dimension)
            overflow = overflow || product.overflow
            elementCount = product.partialValue
        }
        guard let offsets = entry["data_offsets"]?.arrayValue, offsets.count == 2,
              case .integer = offsets[0], case .integer = offsets[1],
              let begin = offsets[0].intValue, let end = offsets[1].intValue
        else {
            throw SafetensorsError(.malformedHeader, file: file, tensor: name, "\"data_offsets\" is missing or not two integers")
        }
        guard begin >= 0, begin <= end else {
            throw SafetensorsError(.badOffsets, file: file, tensor: name, "data_offsets [\(begin), \(end)] are not an increasing pair")
        }
        guard end <= dataSize else {
            throw SafetensorsError(.badOffsets, file: file, tensor: name, "data_offsets [\(begin), \(end)] run past the end of the data (\(dataSize) bytes): the file is truncated or the header is wrong")
        }
        let byteCount = elementCount.multipliedReportingOverflow(by: dtype.byteSize)
        guard !overflow, !byteCount.overflow, byteCount.partialValue == end - begin else {
            throw SafetensorsError(.badShape, file: file, tensor: name, "shape \(shape) of \(dtype.rawValue) needs \(overflow || byteCount.overflow ? "more than Int.max" : String(byteCount.partialValue)) bytes but data_offsets span \(end - begin)")
        }
        return TensorInfo(name: name, dtype: dtype, shape: shape, elementCount: elementCount,
                          byteRange: (dataStart + begin)..<(dataStart + end))
    }

    // MARK: - Lookup

    public subscript(name: String) -> TensorInfo? { index[name].map { tensors[$0] } }

    /// The tensor named `name`, or a `missingTensor` error naming the file.
    public func info(_ name: String) throws -> TensorInfo {
        guard let info = self[name] else {
            throw SafetensorsError(.missingTensor, file: url.path, tensor: name, "not in this file")
        }
        return info
    }

    // MARK: - Reading

    /// The tensor's values widened (F16, BF16) or narrowed (F64) to Float.
    public func floats(_ name: String) throws -> [Float] {
        let info = try info(name)
        return try HugePages.floats(count: info.elementCount) { try readFloats(name, into: $0) }
    }

    /// Converts the tensor into `destination` (exactly its element count; optionally checking
    /// its shape) in one pass from the mapped file. With `requireFinite`, a NaN or infinity is
    /// refused (naming the file, the tensor and the index), checked block by block as it is written.
    public func readFloats(
        _ name: String, expectedShape: [Int]? = nil, requireFinite: Bool = false, into destination: UnsafeMutableBufferPointer<Float>
    ) throws {
        let info = try info(name)
        if let expectedShape, expectedShape != info.shape {
            throw SafetensorsError(.shapeMismatch, file: url.path, tensor: name, "shape is \(info.shape) but \(expectedShape) was expected")
        }
        guard info.dtype.isReadableAsFloat else {
            throw SafetensorsError(.unsupportedDType, file: url.path, tensor: name, "dtype \(info.dtype.rawValue) cannot be read as floating-point weights (F32, F16, BF16 or F64 expected)")
        }
        guard destination.count == info.elementCount else {
            throw SafetensorsError(.shapeMismatch, file: url.path, tensor: name, "has \(info.elementCount) elements but \(destination.count) were expected")
        }
        guard info.elementCount > 0, let output = destination.baseAddress else { return }
        let firstNonFinite = bytes.withUnsafeBytes { raw in
            SafetensorsConversion.toFloat(
                info.dtype, from: UnsafeRawBufferPointer(rebasing: raw[info.byteRange]).baseAddress!, into: output,
                count: info.elementCount, checkFinite: requireFinite)
        }
        if let bad = firstNonFinite {
            throw SafetensorsError(.nonFinite, file: url.path, tensor: name, "value \(output[bad]) at index \(bad) is not finite")
        }
    }

    /// An integer tensor (I8...I64, U8...U32) as `[Int]`, e.g. token ids in a test fixture.
    public func integers(_ name: String) throws -> [Int] {
        let info = try info(name)
        guard info.dtype.isInteger else {
            throw SafetensorsError(.unsupportedDType, file: url.path, tensor: name, "dtype \(info.dtype.rawValue) is not an integer type")
        }
        return bytes.withUnsafeBytes { raw in
            let source = UnsafeRawBufferPointer(rebasing: raw[info.byteRange])
            return (0..<info.elementCount).map { i -> Int in
                switch info.dtype {
                case .I64: return Int(source.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self))
                case .I32: return Int(source.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self))
                case .U32: return Int(source.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))
                case .I16: return Int(source.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self))
                case .U16: return Int(source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                case .I8: return Int(source.loadUnaligned(fromByteOffset: i, as: Int8.self))
                default: return Int(source.loadUnaligned(fromByteOffset: i, as: UInt8.self))
                }
            }
        }
    }
}
