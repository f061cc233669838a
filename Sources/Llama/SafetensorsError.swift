import Foundation

/// A safetensors file or shard index that cannot be read or written; always names the
/// file and, where there is one, the tensor.
public struct SafetensorsError: Error, CustomStringConvertible, LocalizedError, Equatable {
    public enum Kind: String, Sendable {
        /// The file cannot be opened or read.
        case unreadable
        /// Shorter than the 8-byte header length, or data missing at the end.
        case truncated
        /// The header length is past the end of the file or above the sane cap.
        case headerLength
        /// The header is not a JSON object of the expected form.
        case malformedHeader
        /// A dtype the format does not define, or one that cannot be read as this type.
        case unsupportedDType
        /// A negative dimension, or an element count that does not match the byte span.
        case badShape
        /// `data_offsets` reversed, outside the data region, or overlapping another tensor.
        case badOffsets
        /// A tensor the caller asked for is not in the file.
        case missingTensor
        /// The tensor's shape is not the one the caller expected (e.g. from `config.json`).
        case shapeMismatch
        /// A tensor the model has no parameter for (e.g. a bias), so loading would drop it.
        case unexpectedTensor
        /// `model.safetensors.index.json` is malformed or names a shard that does not hold the tensor.
        case badIndex
        /// NaN or infinity in values to be written (or read as weights).
        case nonFinite
        /// The file could not be written.
        case writeFailed
    }

    public var kind: Kind
    public var file: String
    public var tensor: String?
    public var detail: String

    public init(_ kind: Kind, file: String, tensor: String? = nil, _ detail: String) {
        self.kind = kind
        self.file = file
        self.tensor = tensor
        self.detail = detail
    }

    public var description: String {
        if let tensor { return "\(file): tensor \"\(tensor)\": \(detail)" }
        return "\(file): \(detail)"
    }

    public var errorDescription: String? { description }
}
