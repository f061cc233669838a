import Foundation

/// The gated MLP activation: `h = silu(gate) * up`, `silu(g) = g * sigmoid(g)`.
/// gate, up, h `[count]` (element-wise; `[tokens, intermediate]` in the model).
public enum SwiGLU {
    // MARK: - Forward

    public static func forward(gate: UnsafePointer<Float>, up: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, count: Int) {
        Parallel.forChunks(count, minimumChunk: 1 << 15) { range in
            for i in range {
                let g = gate[i]
                output[i] = g / (1 + expf(-g)) * up[i]
            }
        }
    }

    // MARK: - Backward

    /// Overwrites `dGate = dh * up * s * (1 + g * (1 - s))` and `dUp = dh * silu(g)`, s = sigmoid(g).
    public static func backward(
        gate: UnsafePointer<Float>, up: UnsafePointer<Float>, dOutput: UnsafePointer<Float>,
        dGate: UnsafeMutablePointer<Float>, dUp: UnsafeMutablePointer<Float>, count: Int
    ) {
        Parallel.forChunks(count, minimumChunk: 1 << 15) { range in
            for i in range {
                let g = gate[i], d = dOutput[i]
                let s = 1 / (1 + expf(-g))
                dUp[i] = d * g * s
                dGate[i] = d * up[i] * s * (1 + g * (1 - s))
            }
        }
    }

    // MARK: - Naive oracle

    public static func forwardNaive(gate: [Float], up: [Float]) -> [Float] {
        zip(gate, up).map { g, u in Float(Double(g) / (1 + exp(-Double(g))) * Double(u)) }
    }
}
