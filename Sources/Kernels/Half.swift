import CKernelSupport

/// IEEE binary16 storage (as raw `UInt16` bit patterns) and its conversion to and from Float.
///
/// Swift's `Float16` conversions are library calls on generic x86-64; these wrap the
/// F16C/AVX-512 loops in CKernelSupport, which round to nearest even.
public enum Half {
    /// `destination[i] = Float(source[i])` for `count` values.
    @inline(__always)
    public static func toFloat(_ source: UnsafePointer<UInt16>, _ destination: UnsafeMutablePointer<Float>, count: Int) {
        if count > 0 { dpo_f16_to_f32(source, destination, count) }
    }

    /// `destination[i] = Float16(source[i])` (round to nearest even, overflow to infinity).
    @inline(__always)
    public static func fromFloat(_ source: UnsafePointer<Float>, _ destination: UnsafeMutablePointer<UInt16>, count: Int) {
        if count > 0 { dpo_f32_to_f16(source, destination, count) }
    }

    /// Converts a whole array to binary16 bit patterns.
    public static func encode(_ values: [Float]) -> [UInt16] {
        var out = [UInt16](repeating: 0, count: values.count)
        values.withUnsafeBufferPointer { s in
            out.withUnsafeMutableBufferPointer { d in
                if let sb = s.baseAddress, let db = d.baseAddress { fromFloat(sb, db, count: values.count) }
            }
        }
        return out
    }

    /// Converts binary16 bit patterns back to Float.
    public static func decode(_ values: [UInt16]) -> [Float] {
        var out = [Float](repeating: 0, count: values.count)
        values.withUnsafeBufferPointer { s in
            out.withUnsafeMutableBufferPointer { d in
                if let sb = s.baseAddress, let db = d.baseAddress { toFloat(sb, db, count: values.count) }
            }
        }
        return out
    }

    /// Rounds every value through binary16 in place (what Float16 storage does to a tensor).
    public static func round(_ values: UnsafeMutablePointer<Float>, count: Int) {
        var chunk = [UInt16](repeating: 0, count: min(count, 4096))
        chunk.withUnsafeMutableBufferPointer { c in
            var start = 0
            while start < count {
                let n = min(c.count, count - start)
                fromFloat(values + start, c.baseAddress!, count: n)
                toFloat(c.baseAddress!, values + start, count: n)
                start += n
            }
        }
    }
}
