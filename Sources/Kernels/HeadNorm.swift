/// RMSNorm over each attention head of queries or keys (Qwen3's `q_norm` / `k_norm`), in float32:
/// `y[t, h, :] = w * x[t, h, :] * rstd[t, h]`, `rstd = 1 / sqrt(mean(x[t, h, :]^2) + eps)`, one
/// weight `w [headDim]` shared by every head.
///
/// x `[tokens, heads * headDim]` with rows `xStride` apart (q or k columns inside the stacked
/// q|k|v rows), y likewise with `yStride`. rstd is recomputed in backward from the saved x.
public enum HeadNorm {
    public struct Shape: Sendable {
        public var tokens: Int, heads: Int, headDim: Int
        public init(tokens: Int, heads: Int, headDim: Int) {
            self.tokens = tokens
            self.heads = heads
            self.headDim = headDim
        }
    }

    @inline(__always)
    static func rstd(_ v: UnsafePointer<Float>, _ headDim: Int, _ eps: Float) -> Float {
        var sumSquares: Float = 0
        for j in 0..<headDim { sumSquares += v[j] * v[j] }
        return 1 / (sumSquares / Float(headDim) + eps).squareRoot()
    }

    /// `y = norm(x)`; y may be x itself (each head is read before it is written).
    public static func forward(x: UnsafePointer<Float>, xStride: Int, y: UnsafeMutablePointer<Float>, yStride: Int,
                               weight: UnsafePointer<Float>, shape s: Shape, eps: Float) {
        Parallel.forChunks(s.tokens, minimumChunk: 32) { range in
            for t in range {
                for h in 0..<s.heads {
                    let v = x + t * xStride + h * s.headDim, out = y + t * yStride + h * s.headDim
                    let r = rstd(v, s.headDim, eps)
                    for j in 0..<s.headDim { out[j] = weight[j] * (v[j] * r) }
                }
            }
        }
    }

    /// In place on the gradient: `g` (dLoss/dy, rows `gStride` apart) becomes dLoss/dx =
    /// `rstd * w * g - x * rstd^3 / headDim * sum(w * g * x)`; `dWeight += sum over tokens and
    /// heads of g * x * rstd` (computed first, from the incoming g).
    public static func backward(x: UnsafePointer<Float>, xStride: Int, gradient g: UnsafeMutablePointer<Float>, gStride: Int,
                                weight: UnsafePointer<Float>, dWeight: UnsafeMutablePointer<Float>, shape s: Shape, eps: Float) {
        var rstds = [Float](repeating: 0, count: s.tokens * s.heads)
        rstds.withUnsafeMutableBufferPointer { buffer in
            let r = buffer.baseAddress!
            Parallel.forChunks(s.tokens, minimumChunk: 32) { range in
                for t in range {
                    for h in 0..<s.heads { r[t * s.heads + h] = rstd(x + t * xStride + h * s.headDim, s.headDim, eps) }
                }
            }
            // Weight gradient: one writer per column, summed in token order.
            Parallel.forChunks(s.headDim, minimumChunk: 16) { columns in
                for t in 0..<s.tokens {
                    for h in 0..<s.heads {
                        let v = x + t * xStride + h * s.headDim, d = g + t * gStride + h * s.headDim, rh = r[t * s.heads + h]
                        for j in columns { dWeight[j] += d[j] * v[j] * rh }
                    }
                }
            }
            Parallel.forChunks(s.tokens, minimumChunk: 32) { range in
                for t in range {
                    for h in 0..<s.heads {
                        let v = x + t * xStride + h * s.headDim, d = g + t * gStride + h * s.headDim, rh = r[t * s.heads + h]
                        var dot: Float = 0
                        for j in 0..<s.headDim { dot += weight[j] * d[j] * v[j] }
                        let c = dot * rh * rh * rh / Float(s.headDim)
                        for j in 0..<s.headDim { d[j] = rh * weight[j] * d[j] - v[j] * c }
                    }
                }
            }
        }
    }
}
