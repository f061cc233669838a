import CMPIShim

/// The binary16 arithmetic behind fp16 all-reduces (F16C/AVX-512 where the CPU has it).
public enum HalfPrecisionArithmetic {
    /// `accumulator[i] = half(float(addend[i]) + float(accumulator[i]))`, correctly rounded:
    /// the user op MPI applies to fp16 buckets.
    public static func add(_ addend: UnsafeBufferPointer<UInt16>, into accumulator: UnsafeMutableBufferPointer<UInt16>) {
        precondition(addend.count == accumulator.count, "half add: \(addend.count) vs \(accumulator.count) elements")
        guard addend.count > 0 else { return }
        dpo_f16_sum_into(addend.baseAddress, accumulator.baseAddress, addend.count)
    }

    /// `destination[i] = half(source[i] * scale)`.
    public static func convert(_ source: UnsafeBufferPointer<Float>, scale: Float, into destination: UnsafeMutableBufferPointer<UInt16>) {
        precondition(source.count == destination.count, "half convert: \(source.count) vs \(destination.count) elements")
        guard source.count > 0 else { return }
        dpo_f32_to_f16_scaled(source.baseAddress, destination.baseAddress, source.count, scale)
    }

    /// `destination[i] = float(source[i])`; true when any value is inf or NaN.
    public static func widen(_ source: UnsafeBufferPointer<UInt16>, into destination: UnsafeMutableBufferPointer<Float>) -> Bool {
        precondition(source.count == destination.count, "half widen: \(source.count) vs \(destination.count) elements")
        guard source.count > 0 else { return false }
        return dpo_f16_to_f32_checked(source.baseAddress, destination.baseAddress, source.count) != 0
    }

    /// True when the F16C/AVX-512 loops are in use.
    public static var usesVectorInstructions: Bool { dpo_mpi_half_uses_f16c() != 0 }

    /// Tests: run the portable loops (true) or choose by CPU again (false).
    static func forcePortable(_ portable: Bool) { dpo_mpi_half_force_portable(portable ? 1 : 0) }
}
