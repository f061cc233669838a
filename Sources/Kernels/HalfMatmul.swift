import CKernelSupport

/// A layer's weight matrix as the kernels read it: float32 values, or binary16 bit patterns
/// that `HalfMatmul` converts while packing them (no float32 copy of the matrix).
public enum WeightMatrix {
    case float32(UnsafePointer<Float>)
    case binary16(UnsafePointer<UInt16>)
}

/// `C = A op(B) + beta C` with A float32 and B binary16 (`dpo_f16_gemm`, HalfGemm.c): the fp16
/// path's linear layers without converting each weight to float32 before sgemm.
///
/// Measured on the weight-bearing GEMMs of a smollm2-135m step (launch/gemm-f16.sh; AVX-512
/// AMD EPYC, 1 thread): level with OpenBLAS's sgemm on float32 weights, and faster than
/// converting first and then calling sgemm (the figures are in the README).
public enum HalfMatmul {
    /// The AVX-512 kernel exists on this CPU (else callers convert and use sgemm).
    public static let isAvailable = dpo_cpu_has_f16_gemm() != 0

    /// Whether fp16 models read their matrices through `gemm` (default: where the kernel
    /// exists). Tests switch it off to compare with converting first.
    nonisolated(unsafe) public static var enabled = isAvailable

    /// Columns per thread at least (two kernel tiles): narrower splits cost more in packing A
    /// again than they gain.
    static let minimumColumns = 64
    /// Rows of the kernel's tile (HalfGemm.c's MR): row splits fall on whole tiles.
    static let kernelRows = 14
    /// Row tiles per thread at least (one MC block of HalfGemm.c).
    static let minimumRowTiles = 3

    /// `C[m, n] = A[m, k] op(B) + beta C` (row-major; `op(B) = B^T` with B `[n, k]` when
    /// `transposeB`, else B `[k, n]`); beta 0 overwrites C. The rows or the columns are split
    /// over the threads: each element is computed whole by one thread, in the same order
    /// whatever the split.
    ///
    /// A thread given some columns packs all of A; one given some rows packs (and converts) all
    /// of B. So the larger operand is split and the smaller one packed by every thread: rows
    /// when m > n (every layer GEMM of a 2048-token step but gate|up's forward), else columns.
    public static func gemm(
        transposeB: Bool, m: Int, n: Int, k: Int,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<UInt16>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        if m == 0 || n == 0 { return }
        if m > n {
            let tiles = (m + kernelRows - 1) / kernelRows
            Parallel.forChunks(tiles, minimumChunk: minimumRowTiles) { tileRange in
                let i = tileRange.lowerBound * kernelRows, rows = min(m, tileRange.upperBound * kernelRows) - i
                dpo_f16_gemm(transposeB ? 1 : 0, rows, n, k, a + i * lda, lda, b, ldb, beta, c + i * ldc, ldc)
            }
            return
        }
        Parallel.forChunks(n, minimumChunk: minimumColumns) { columns in
            let j = columns.lowerBound
            dpo_f16_gemm(transposeB ? 1 : 0, m, columns.count, k, a, lda, transposeB ? b + j * ldb : b + j, ldb,
                         beta, c + j, ldc)
        }
    }
}

extension Linear {
    /// `y = x W^T + beta * y` for a float32 or binary16 weight (see `Linear.forward`).
    @inline(__always)
    public static func forward(
        x: UnsafePointer<Float>, weight: WeightMatrix, y: UnsafeMutablePointer<Float>,
        tokens: Int, inFeatures: Int, outFeatures: Int, beta: Float = 0
    ) {
        switch weight {
        case .float32(let w):
            forward(x: x, weight: w, y: y, tokens: tokens, inFeatures: inFeatures, outFeatures: outFeatures, beta: beta)
        case .binary16(let w):
            HalfMatmul.gemm(transposeB: true, m: tokens, n: outFeatures, k: inFeatures, a: x, lda: inFeatures,
                            b: w, ldb: inFeatures, beta: beta, c: y, ldc: outFeatures)
        }
    }

    /// `Linear.backward` for a float32 or binary16 weight: `dx (+)= dy W` reads the weight,
    /// `dW += dy^T x` does not.
    @inline(__always)
    public static func backward(
        x: UnsafePointer<Float>, weight: WeightMatrix, dy: UnsafePointer<Float>,
        dx: UnsafeMutablePointer<Float>?, dWeight: UnsafeMutablePointer<Float>?,
        tokens: Int, inFeatures: Int, outFeatures: Int, overwriteInput: Bool = false
    ) {
        switch weight {
        case .float32(let w):
            backward(x: x, weight: w, dy: dy, dx: dx, dWeight: dWeight, tokens: tokens, inFeatures: inFeatures,
                     outFeatures: outFeatures, overwriteInput: overwriteInput)
        case .binary16(let w):
            if let dx {
                HalfMatmul.gemm(transposeB: false, m: tokens, n: inFeatures, k: outFeatures, a: dy, lda: outFeatures,
                                b: w, ldb: inFeatures, beta: overwriteInput ? 0 : 1, c: dx, ldc: inFeatures)
            }
            if let dWeight {
                weightGradient(x: x, dy: dy, dWeight: dWeight, tokens: tokens, inFeatures: inFeatures, outFeatures: outFeatures)
            }
        }
    }
}
