/// Element types of the safetensors format (names as they appear in the header).
public enum SafetensorsDType: String, CaseIterable, Codable, Sendable {
    case F64, F32, F16, BF16
    case I64, I32, I16, I8, U64, U32, U16, U8, BOOL
    case F8_E4M3, F8_E5M2

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .F64, .I64, .U64: return 8
        case .F32, .I32, .U32: return 4
        case .F16, .BF16, .I16, .U16: return 2
        case .I8, .U8, .BOOL, .F8_E4M3, .F8_E5M2: return 1
        }
    }

    /// Types read as `Float` weights (F64 is narrowed, F16/BF16 widened exactly).
    public var isReadableAsFloat: Bool { [.F64, .F32, .F16, .BF16].contains(self) }

    /// Types this package writes.
    public var isWritable: Bool { [.F32, .F16, .BF16].contains(self) }

    /// Integer types read by `SafetensorsFile.integers(_:)`.
    public var isInteger: Bool { [.I64, .I32, .I16, .I8, .U32, .U16, .U8].contains(self) }

    /// The transformers `torch_dtype` name (`float32`, `float16`, `bfloat16`), for writable types.
    public var torchName: String? {
        switch self {
        case .F32: return "float32"
        case .F16: return "float16"
        case .BF16: return "bfloat16"
        default: return nil
        }
    }
}
