import CKernelSupport

/// `Linear.forward` over binary16 weights for a few tokens (decoding), reading the weight rows
/// once and converting them in registers instead of into a float32 copy first.
///
/// For one token the product is bound by reading the weight: a float32 copy makes it read 2
/// bytes, write 4 and read 4 per weight; this reads 2. Many tokens amortise the copy over the
/// GEMM, so callers keep `Half.toFloat` + `Linear.forward` there (`useFor(tokens:)`).
public enum HalfLinear {
    /// Largest token count the fused loop beats a float32 copy plus sgemm at (it reads the
    /// weight once per token; a standalone C measurement on an AVX-512 AMD EPYC, 3072 x 576 with
    /// 30 such weights in turn: 4 tokens 0.65 ms against 0.86 ms, 1 token 0.37 against 0.86 ms).
    public static let maximumTokens = 4

    /// Whether a call with `tokens` rows should take this path (the AVX-512 loop exists and the
    /// rows are few); otherwise convert and use sgemm.
    @inline(__always)
    public static func useFor(tokens: Int) -> Bool {
        tokens <= maximumTokens && avx512
    }

    private static let avx512 = dpo_cpu_has_avx512_half_linear() != 0

    /// `y[t, o] = x[t, :] . W[o, :] + beta * y[t, o]`: x `[tokens, inFeatures]`, W `[outFeatures,
    /// inFeatures]` binary16 bit patterns, y `[tokens, outFeatures]`; output rows split over the
    /// threads (each output is written by one thread, in the same order whatever the split).
    public static func forward(
        x: UnsafePointer<Float>, weight: UnsafePointer<UInt16>, y: UnsafeMutablePointer<Float>,
        tokens: Int, inFeatures: Int, outFeatures: Int, beta: Float = 0
    ) {
        if tokens == 0 || outFeatures == 0 { return }
        Parallel.forChunks(outFeatures, minimumChunk: 256) { rows in
            dpo_f16_linear(x, inFeatures, weight + rows.lowerBound * inFeatures, inFeatures, y + rows.lowerBound, outFeatures,
                           tokens, rows.count, inFeatures, beta)
        }
    }
}
