import Kernels

/// Direct access to the working weights, for ZeRO-1: each rank writes the slice it updated
/// (its shard of the fp32 master weights, rounded to binary16 under fp16) and the ranks then
/// all-gather the working buffer in place, so no full-size fp32 copy of the weights exists
/// besides the working one.
extension LlamaModel {
    /// The working weights in their storage type, layout order [P].
    public enum WorkingWeights {
        case fp32(UnsafeMutableBufferPointer<Float>)
        /// IEEE binary16 bit patterns.
        case fp16(UnsafeMutableBufferPointer<UInt16>)
    }

    /// Runs `body` on the working weights, in place.
    public func withWorkingWeights<T>(_ body: (WorkingWeights) throws -> T) rethrows -> T {
        if let weights32 {
            return try body(.fp32(UnsafeMutableBufferPointer(start: weights32.pointer, count: layout.totalCount)))
        }
        return try body(.fp16(UnsafeMutableBufferPointer(start: weights16!.pointer, count: layout.totalCount)))
    }

    /// Replaces working weights [offset, offset + values.count) (float32, rounded to binary16 under fp16).
    public func loadWeights(_ values: UnsafeBufferPointer<Float>, at offset: Int) {
        precondition(offset >= 0 && offset + values.count <= layout.totalCount,
                     "loadWeights: \(values.count) values at \(offset) exceed the layout's \(layout.totalCount)")
        guard let base = values.baseAddress, values.count > 0 else { return }
        if let weights32 {
            (weights32.pointer + offset).update(from: base, count: values.count)
        } else if let weights16 {
            Half.fromFloat(base, weights16.pointer + offset, count: values.count)
        }
    }
}
