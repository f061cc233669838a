import COpenBLAS

/// Row-major matrix products through OpenBLAS `cblas_sgemm`, with a naive oracle beside it.
///
/// `C[m, n] = alpha * op(A)[m, k] * op(B)[k, n] + beta * C`, where `op(X)` is `X` or `X^T`.
/// Leading dimensions are the row strides as stored (so a head's columns inside a wider
/// row can be addressed without copying).
public enum Matmul {
    // MARK: - Fast path

    /// `C = alpha * op(A) op(B) + beta * C` with cblas_sgemm (row-major).
    /// A is stored `[m, k]` (or `[k, m]` when `transposeA`), B `[k, n]` (or `[n, k]` when `transposeB`).
    @inline(__always)
    public static func gemm(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        if m == 0 || n == 0 { return }
        if k == 0 {
            if beta != 1 { for i in 0..<m { for j in 0..<n { c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j] } } }
            return
        }
        cblas_sgemm(CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    // MARK: - Naive oracle

    /// The same product with three loops and Double accumulation (tests and documentation).
    public static func gemmNaive(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        for i in 0..<m {
            for j in 0..<n {
                var sum: Double = 0
                for p in 0..<k {
                    let av = transposeA ? a[p * lda + i] : a[i * lda + p]
                    let bv = transposeB ? b[j * ldb + p] : b[p * ldb + j]
                    sum += Double(av) * Double(bv)
                }
                let previous = beta == 0 ? 0 : Double(beta) * Double(c[i * ldc + j])
                c[i * ldc + j] = Float(Double(alpha) * sum + previous)
            }
        }
    }
}

/// A bias-free linear layer in PyTorch's convention: `y[N, out] = x[N, in] * W[out, in]^T`.
public enum Linear {
    /// `y = x W^T + beta * y`.  x `[tokens, inFeatures]`, W `[outFeatures, inFeatures]`, y `[tokens, outFeatures]`.
    @inline(__always)
    public static func forward(
        x: UnsafePointer<Float>, weight: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
        tokens: Int, inFeatures: Int, outFeatures: Int, beta: Float = 0
    ) {
        BLAS.ensureBestCore()
        Matmul.gemm(transposeA: false, transposeB: true, m: tokens, n: outFeatures, k: inFeatures,
                    a: x, lda: inFeatures, b: weight, ldb: inFeatures, beta: beta, c: y, ldc: outFeatures)
    }

    /// Accumulates `dx += dy W` (when `dx` is given; `overwriteInput` makes it `=`) and `dW += dy^T x`.
    @inline(__always)
    public static func backward(
        x: UnsafePointer<Float>, weight: UnsafePointer<Float>, dy: UnsafePointer<Float>,
        dx: UnsafeMutablePointer<Float>?, dWeight: UnsafeMutablePointer<Float>?,
        tokens: Int, inFeatures: Int, outFeatures: Int, overwriteInput: Bool = false
    ) {
        BLAS.ensureBestCore()
        if let dx {
            Matmul.gemm(transposeA: false, transposeB: false, m: tokens, n: inFeatures, k: outFeatures,
                        a: dy, lda: outFeatures, b: weight, ldb: inFeatures, beta: overwriteInput ? 0 : 1,
                        c: dx, ldc: inFeatures)
        }
        if let dWeight { weightGradient(x: x, dy: dy, dWeight: dWeight, tokens: tokens, inFeatures: inFeatures, outFeatures: outFeatures) }
    }

    /// `dW += dy^T x`: dy `[tokens, outFeatures]`, x `[tokens, inFeatures]`, dW `[outFeatures, inFeatures]`.
    @inline(__always)
    public static func weightGradient(
        x: UnsafePointer<Float>, dy: UnsafePointer<Float>, dWeight: UnsafeMutablePointer<Float>,
        tokens: Int, inFeatures: Int, outFeatures: Int
    ) {
        BLAS.ensureBestCore()
        Matmul.gemm(transposeA: true, transposeB: false, m: outFeatures, n: inFeatures, k: tokens,
                    a: dy, lda: outFeatures, b: x, ldb: inFeatures, beta: 1, c: dWeight, ldc: inFeatures)
    }
}
