/// The low-rank path of a LoRA linear layer (Hu et al. 2021, as PEFT computes it):
///
///     y[N, out] += scale * (x[N, in] A[r, in]^T) B[out, r]^T        scale = alpha / r
///
/// The frozen base product `x W^T` is `Linear`'s; this adds the adapter's share to the same
/// output. `y`/`dy` may be a column block of a wider row (a stacked q|k|v or gate|up output),
/// addressed by their row stride `ldy`. The intermediate `u = x A^T` `[N, r]` lives in caller
/// scratch; backward recomputes it (r columns: cheaper than saving it per layer and module).
public enum LoRALinear {
    /// Shapes of one adapted projection.
    public struct Shape: Sendable {
        public var tokens, inFeatures, outFeatures, rank: Int
        /// Row stride of `y` / `dy` (>= outFeatures).
        public var ldy: Int
        public var scale: Float

        public init(tokens: Int, inFeatures: Int, outFeatures: Int, rank: Int, ldy: Int, scale: Float) {
            self.tokens = tokens
            self.inFeatures = inFeatures
            self.outFeatures = outFeatures
            self.rank = rank
            self.ldy = ldy
            self.scale = scale
        }
    }

    /// `y += scale * (x A^T) B^T`; `u` scratch `[tokens, rank]`.
    public static func forward(
        x: UnsafePointer<Float>, a: UnsafePointer<Float>, b: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
        u: UnsafeMutablePointer<Float>, shape s: Shape
    ) {
        BLAS.ensureBestCore()
        Matmul.gemm(transposeA: false, transposeB: true, m: s.tokens, n: s.rank, k: s.inFeatures,
                    a: x, lda: s.inFeatures, b: a, ldb: s.inFeatures, beta: 0, c: u, ldc: s.rank)
        Matmul.gemm(transposeA: false, transposeB: true, m: s.tokens, n: s.outFeatures, k: s.rank, alpha: s.scale,
                    a: u, lda: s.rank, b: b, ldb: s.rank, beta: 1, c: y, ldc: s.ldy)
    }

    /// Accumulates `dA += scale * (dy B)^T x`, `dB += scale * dy^T (x A^T)` and (when given)
    /// `dx += scale * (dy B) A`. Scratch `u`, `du` `[tokens, rank]`. No base-weight gradient.
    public static func backward(
        x: UnsafePointer<Float>, a: UnsafePointer<Float>, b: UnsafePointer<Float>, dy: UnsafePointer<Float>,
        dx: UnsafeMutablePointer<Float>?, dA: UnsafeMutablePointer<Float>, dB: UnsafeMutablePointer<Float>,
        u: UnsafeMutablePointer<Float>, du: UnsafeMutablePointer<Float>, shape s: Shape
    ) {
        BLAS.ensureBestCore()
        Matmul.gemm(transposeA: false, transposeB: true, m: s.tokens, n: s.rank, k: s.inFeatures,
                    a: x, lda: s.inFeatures, b: a, ldb: s.inFeatures, beta: 0, c: u, ldc: s.rank)
        // dB[out, r] += scale * dy^T u
        Matmul.gemm(transposeA: true, transposeB: false, m: s.outFeatures, n: s.rank, k: s.tokens, alpha: s.scale,
                    a: dy, lda: s.ldy, b: u, ldb: s.rank, beta: 1, c: dB, ldc: s.rank)
        // du[N, r] = scale * dy B
        Matmul.gemm(transposeA: false, transposeB: false, m: s.tokens, n: s.rank, k: s.outFeatures, alpha: s.scale,
                    a: dy, lda: s.ldy, b: b, ldb: s.rank, beta: 0, c: du, ldc: s.rank)
        // dA[r, in] += du^T x
        Matmul.gemm(transposeA: true, transposeB: false, m: s.rank, n: s.inFeatures, k: s.tokens,
                    a: du, lda: s.rank, b: x, ldb: s.inFeatures, beta: 1, c: dA, ldc: s.inFeatures)
        if let dx {
            Matmul.gemm(transposeA: false, transposeB: false, m: s.tokens, n: s.inFeatures, k: s.rank,
                        a: du, lda: s.rank, b: a, ldb: s.inFeatures, beta: 1, c: dx, ldc: s.inFeatures)
        }
    }

    // MARK: - Naive oracle

    /// `forward` with plain loops and Double sums (tests and documentation).
    public static func forwardNaive(
        x: UnsafePointer<Float>, a: UnsafePointer<Float>, b: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, shape s: Shape
    ) {
        let u = naiveDown(x: x, a: a, shape: s)
        for t in 0..<s.tokens {
            for o in 0..<s.outFeatures {
                var sum = 0.0
                for k in 0..<s.rank { sum += u[t * s.rank + k] * Double(b[o * s.rank + k]) }
                y[t * s.ldy + o] = Float(Double(y[t * s.ldy + o]) + Double(s.scale) * sum)
            }
        }
    }

    /// `backward` with plain loops and Double sums (tests and documentation).
    public static func backwardNaive(
        x: UnsafePointer<Float>, a: UnsafePointer<Float>, b: UnsafePointer<Float>, dy: UnsafePointer<Float>,
        dx: UnsafeMutablePointer<Float>?, dA: UnsafeMutablePointer<Float>, dB: UnsafeMutablePointer<Float>, shape s: Shape
    ) {
        let u = naiveDown(x: x, a: a, shape: s)
        var du = [Double](repeating: 0, count: s.tokens * s.rank)
        for t in 0..<s.tokens {
            for k in 0..<s.rank {
                var sum = 0.0
                for o in 0..<s.outFeatures { sum += Double(dy[t * s.ldy + o]) * Double(b[o * s.rank + k]) }
                du[t * s.rank + k] = Double(s.scale) * sum
            }
        }
        for o in 0..<s.outFeatures {
            for k in 0..<s.rank {
                var sum = 0.0
                for t in 0..<s.tokens { sum += Double(dy[t * s.ldy + o]) * u[t * s.rank + k] }
                dB[o * s.rank + k] = Float(Double(dB[o * s.rank + k]) + Double(s.scale) * sum)
            }
        }
        for k in 0..<s.rank {
            for i in 0..<s.inFeatures {
                var sum = 0.0
                for t in 0..<s.tokens { sum += du[t * s.rank + k] * Double(x[t * s.inFeatures + i]) }
                dA[k * s.inFeatures + i] = Float(Double(dA[k * s.inFeatures + i]) + sum)
            }
        }
        guard let dx else { return }
        for t in 0..<s.tokens {
            for i in 0..<s.inFeatures {
                var sum = 0.0
                for k in 0..<s.rank { sum += du[t * s.rank + k] * Double(a[k * s.inFeatures + i]) }
                dx[t * s.inFeatures + i] = Float(Double(dx[t * s.inFeatures + i]) + sum)
            }
        }
    }

    /// `u = x A^T` in Double `[tokens, rank]`.
    private static func naiveDown(x: UnsafePointer<Float>, a: UnsafePointer<Float>, shape s: Shape) -> [Double] {
        var u = [Double](repeating: 0, count: s.tokens * s.rank)
        for t in 0..<s.tokens {
            for k in 0..<s.rank {
                var sum = 0.0
                for i in 0..<s.inFeatures { sum += Double(x[t * s.inFeatures + i]) * Double(a[k * s.inFeatures + i]) }
                u[t * s.rank + k] = sum
            }
        }
        return u
    }
}

// MARK: - Stacked projections

extension LoRALinear {
    /// One adapted projection of a stack that shares its input (q|k|v, gate|up): its B `[out, r]`,
    /// its output block `y` (forward) or output gradient `dy` (backward) with row stride `ldy`,
    /// and (backward) where dB accumulates.
    public struct Branch {
        public var b: UnsafePointer<Float>
        public var outFeatures: Int
        public var y: UnsafeMutablePointer<Float>
        public var ldy: Int
        public var dB: UnsafeMutablePointer<Float>?

        public init(b: UnsafePointer<Float>, outFeatures: Int, y: UnsafeMutablePointer<Float>, ldy: Int,
                    dB: UnsafeMutablePointer<Float>? = nil) {
            self.b = b
            self.outFeatures = outFeatures
            self.y = y
            self.ldy = ldy
            self.dB = dB
        }
    }

    /// `forward` of every branch at once, their A matrices stacked `[count * r, in]` (adjacent):
    /// one pass over `x` gives `u = x [A_1; ...; A_c]^T` `[tokens, c r]` (scratch `u`), then each
    /// branch adds `scale * u_j B_j^T`. Equal to `forward` per branch.
    public static func forwardStacked(
        x: UnsafePointer<Float>, aStack: UnsafePointer<Float>, branches: [Branch], u: UnsafeMutablePointer<Float>,
        tokens: Int, inFeatures: Int, rank: Int, scale: Float
    ) {
        BLAS.ensureBestCore()
        let width = branches.count * rank
        Matmul.gemm(transposeA: false, transposeB: true, m: tokens, n: width, k: inFeatures,
                    a: x, lda: inFeatures, b: aStack, ldb: inFeatures, beta: 0, c: u, ldc: width)
        for (j, branch) in branches.enumerated() {
            Matmul.gemm(transposeA: false, transposeB: true, m: tokens, n: branch.outFeatures, k: rank, alpha: scale,
                        a: u + j * rank, lda: width, b: branch.b, ldb: rank, beta: 1, c: branch.y, ldc: branch.ldy)
        }
    }

    /// `backward` of every branch at once (A's stacked as in `forwardStacked`; `dAStack` the
    /// same rows of the gradient): per branch dB and `du_j = scale dy_j B_j`, then one
    /// `dA += du^T x` and one `dx += du A` over the stack. Scratch `u`, `du` `[tokens, c r]`.
    public static func backwardStacked(
        x: UnsafePointer<Float>, aStack: UnsafePointer<Float>, branches: [Branch], dx: UnsafeMutablePointer<Float>?,
        dAStack: UnsafeMutablePointer<Float>, u: UnsafeMutablePointer<Float>, du: UnsafeMutablePointer<Float>,
        tokens: Int, inFeatures: Int, rank: Int, scale: Float
    ) {
        backwardStackedInput(aStack: aStack, branches: branches, dx: dx, du: du, tokens: tokens, inFeatures: inFeatures,
                             rank: rank, scale: scale)
        backwardStackedWeights(x: x, aStack: aStack, branches: branches, dAStack: dAStack, u: u, du: du, tokens: tokens,
                               inFeatures: inFeatures, rank: rank, scale: scale)
    }

    /// The part of `backwardStacked` that needs no `x`: `du_j = scale dy_j B_j` into `du`, then
    /// `dx += du A`. `backwardStackedWeights` with the same `du` finishes it: a caller can
    /// produce `x` in between (the attention output, recomputed by the attention backward).
    public static func backwardStackedInput(
        aStack: UnsafePointer<Float>, branches: [Branch], dx: UnsafeMutablePointer<Float>?, du: UnsafeMutablePointer<Float>,
        tokens: Int, inFeatures: Int, rank: Int, scale: Float
    ) {
        BLAS.ensureBestCore()
        let width = branches.count * rank
        for (j, branch) in branches.enumerated() {
            Matmul.gemm(transposeA: false, transposeB: false, m: tokens, n: rank, k: branch.outFeatures, alpha: scale,
                        a: branch.y, lda: branch.ldy, b: branch.b, ldb: rank, beta: 0, c: du + j * rank, ldc: width)
        }
        if let dx {
            Matmul.gemm(transposeA: false, transposeB: false, m: tokens, n: inFeatures, k: width,
                        a: du, lda: width, b: aStack, ldb: inFeatures, beta: 1, c: dx, ldc: inFeatures)
        }
    }

    /// The rest of `backwardStacked` (`du` as `backwardStackedInput` left it): `u = x A^T`
    /// (scratch), each branch's `dB += scale dy_j^T u_j`, and `dA += du^T x`.
    public static func backwardStackedWeights(
        x: UnsafePointer<Float>, aStack: UnsafePointer<Float>, branches: [Branch], dAStack: UnsafeMutablePointer<Float>,
        u: UnsafeMutablePointer<Float>, du: UnsafePointer<Float>, tokens: Int, inFeatures: Int, rank: Int, scale: Float
    ) {
        BLAS.ensureBestCore()
        let width = branches.count * rank
        Matmul.gemm(transposeA: false, transposeB: true, m: tokens, n: width, k: inFeatures,
                    a: x, lda: inFeatures, b: aStack, ldb: inFeatures, beta: 0, c: u, ldc: width)
        for (j, branch) in branches.enumerated() {
            if let dB = branch.dB {
                Matmul.gemm(transposeA: true, transposeB: false, m: branch.outFeatures, n: rank, k: tokens, alpha: scale,
                            a: branch.y, lda: branch.ldy, b: u + j * rank, ldb: width, beta: 1, c: dB, ldc: rank)
            }
        }
        Matmul.gemm(transposeA: true, transposeB: false, m: width, n: inFeatures, k: tokens,
                    a: du, lda: width, b: x, ldb: inFeatures, beta: 1, c: dAStack, ldc: inFeatures)
    }
}
