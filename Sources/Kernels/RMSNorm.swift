/// Root-mean-square layer norm as in Hugging Face LLaMA, in float32:
/// `y = w * x * rstd`, `rstd = 1 / sqrt(mean(x^2) + eps)` over the last dimension.
///
/// x, y `[tokens, hidden]`, w `[hidden]`, rstd `[tokens]` (kept for backward).
///
/// `beforeRow(n)` / `afterRow(n)` run on the thread that handles token row n, before it reads
/// the row / once it is done with it: another per-row job rides on the same threaded pass
/// (under fp16, converting a saved activation row to or from binary16 while the row is in
/// cache), instead of a fork/join of its own.
public enum RMSNorm {
    // MARK: - Forward

    public static func forward(
        x: UnsafePointer<Float>, weight: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
        rstd: UnsafeMutablePointer<Float>, tokens: Int, hidden: Int, eps: Float, afterRow: ((Int) -> Void)? = nil
    ) {
        Parallel.forChunks(tokens, minimumChunk: 32) { range in
            for n in range {
                let row = x + n * hidden, out = output + n * hidden
                var sumSquares: Float = 0
                for j in 0..<hidden { sumSquares += row[j] * row[j] }
                let r = 1 / (sumSquares / Float(hidden) + eps).squareRoot()
                rstd[n] = r
                for j in 0..<hidden { out[j] = weight[j] * (row[j] * r) }
                afterRow?(n)
            }
        }
    }

    /// Recomputes `y` from x and the saved rstd (used by backward instead of storing y).
    public static func apply(
        x: UnsafePointer<Float>, weight: UnsafePointer<Float>, rstd: UnsafePointer<Float>,
        output: UnsafeMutablePointer<Float>, tokens: Int, hidden: Int, beforeRow: ((Int) -> Void)? = nil
    ) {
        Parallel.forChunks(tokens, minimumChunk: 32) { range in
            for n in range {
                beforeRow?(n)
                let row = x + n * hidden, out = output + n * hidden, r = rstd[n]
                for j in 0..<hidden { out[j] = weight[j] * (row[j] * r) }
            }
        }
    }

    // MARK: - Backward

    /// `dx (+)= rstd * w*dy - x * rstd^3 / hidden * sum(w*dy*x)`; `dw += sum_n dy * x * rstd`.
    /// `accumulate` false overwrites dx. dw accumulation is serial over tokens per column block.
    public static func backward(
        x: UnsafePointer<Float>, weight: UnsafePointer<Float>, rstd: UnsafePointer<Float>,
        dOutput: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>, dWeight: UnsafeMutablePointer<Float>,
        tokens: Int, hidden: Int, accumulate: Bool, beforeRow: ((Int) -> Void)? = nil
    ) {
        Parallel.forChunks(tokens, minimumChunk: 32) { range in
            for n in range {
                beforeRow?(n)
                let row = x + n * hidden, g = dOutput + n * hidden, d = dx + n * hidden, r = rstd[n]
                var dot: Float = 0
                for j in 0..<hidden { dot += weight[j] * g[j] * row[j] }
                let c = dot * r * r * r / Float(hidden)
                if accumulate {
                    for j in 0..<hidden { d[j] += r * weight[j] * g[j] - row[j] * c }
                } else {
                    for j in 0..<hidden { d[j] = r * weight[j] * g[j] - row[j] * c }
                }
            }
        }
        // Weight gradient: columns split over workers so each column has one writer.
        Parallel.forChunks(hidden, minimumChunk: 64) { columns in
            for n in 0..<tokens {
                let row = x + n * hidden, g = dOutput + n * hidden, r = rstd[n]
                for j in columns { dWeight[j] += g[j] * row[j] * r }
            }
        }
    }

    // MARK: - Naive oracle

    /// Double-precision forward for tests.
    public static func forwardNaive(x: [Float], weight: [Float], tokens: Int, hidden: Int, eps: Float) -> [Float] {
        var y = [Float](repeating: 0, count: tokens * hidden)
        for n in 0..<tokens {
            var s: Double = 0
            for j in 0..<hidden { s += Double(x[n * hidden + j]) * Double(x[n * hidden + j]) }
            let r = 1 / (s / Double(hidden) + Double(eps)).squareRoot()
            for j in 0..<hidden { y[n * hidden + j] = Float(Double(weight[j]) * Double(x[n * hidden + j]) * r) }
        }
        return y
    }
}
