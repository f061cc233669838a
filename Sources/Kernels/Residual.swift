/// Residual connection: `output = a + b` (element-wise, `[tokens, hidden]`).
/// Backward passes the gradient unchanged to both inputs (`da += dOutput`, `db += dOutput`);
/// the model fuses it by accumulating into the residual stream's gradient.
public enum Residual {
    // MARK: - Forward

    public static func forward(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, count: Int) {
        Parallel.forChunks(count, minimumChunk: 1 << 15) { range in
            for i in range { output[i] = a[i] + b[i] }
        }
    }

    /// `target += addend` (the in-place form used for the stream and its gradient).
    public static func accumulate(_ addend: UnsafePointer<Float>, into target: UnsafeMutablePointer<Float>, count: Int) {
        Parallel.forChunks(count, minimumChunk: 1 << 15) { range in
            for i in range { target[i] += addend[i] }
        }
    }

    // MARK: - Backward

    public static func backward(dOutput: UnsafePointer<Float>, da: UnsafeMutablePointer<Float>, db: UnsafeMutablePointer<Float>, count: Int) {
        accumulate(dOutput, into: da, count: count)
        accumulate(dOutput, into: db, count: count)
    }
}
