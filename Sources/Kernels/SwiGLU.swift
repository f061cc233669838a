import CKernelSupport
import Foundation

/// The gated MLP activation: `h = silu(gate) * up`, `silu(g) = g * sigmoid(g)`.
/// Vectorised (AVX-512 exp) in CKernelSupport; the naive oracle is below.
/// gate, up, h `[count]` (element-wise; `[tokens, intermediate]` in the model).
public enum SwiGLU {
    // MARK: - Forward

    public static func forward(gate: UnsafePointer<Float>, up: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, count: Int) {
        Parallel.forChunks(count, minimumChunk: 1 << 15) { range in
            dpo_swiglu_forward(gate + range.lowerBound, up + range.lowerBound, output + range.lowerBound, range.count)
        }
    }

    // MARK: - Backward

    /// Overwrites `dGate = dh * up * s * (1 + g * (1 - s))` and `dUp = dh * silu(g)`, s = sigmoid(g).
    public static func backward(
        gate: UnsafePointer<Float>, up: UnsafePointer<Float>, dOutput: UnsafePointer<Float>,
        dGate: UnsafeMutablePointer<Float>, dUp: UnsafeMutablePointer<Float>, count: Int
    ) {
        Parallel.forChunks(count, minimumChunk: 1 << 15) { range in
            let o = range.lowerBound
            dpo_swiglu_backward(gate + o, up + o, dOutput + o, dGate + o, dUp + o, range.count)
        }
    }

    // MARK: - Fused gate|up rows

    /// `output[r, :] = silu(gateUp[r, 0..<width]) * gateUp[r, width..<2width]`: the layout of one
    /// matmul against the stacked `[gate_proj; up_proj]` weight. gateUp `[rows, 2*width]`, output `[rows, width]`.
    /// `beforeRow(r)` / `afterRow(r)` run on the thread that computes row r, before it reads
    /// `gateUp`'s row r / after (a per-row job riding on this pass, as in `RMSNorm`).
    public static func forward(gateUp: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, rows: Int, width: Int,
                               beforeRow: ((Int) -> Void)? = nil, afterRow: ((Int) -> Void)? = nil) {
        Parallel.forChunks(rows, minimumChunk: max(1, (1 << 15) / max(width, 1))) { range in
            for r in range {
                beforeRow?(r)
                let g = gateUp + r * 2 * width
                dpo_swiglu_forward(g, g + width, output + r * width, width)
                afterRow?(r)
            }
        }
    }

    /// Overwrites `dGateUp` `[rows, 2*width]` (dGate | dUp per row) from dOutput `[rows, width]`.
    public static func backward(gateUp: UnsafePointer<Float>, dOutput: UnsafePointer<Float>, dGateUp: UnsafeMutablePointer<Float>,
                                rows: Int, width: Int) {
        Parallel.forChunks(rows, minimumChunk: max(1, (1 << 15) / max(width, 1))) { range in
            for r in range {
                let g = gateUp + r * 2 * width, d = dGateUp + r * 2 * width
                dpo_swiglu_backward(g, g + width, dOutput + r * width, d, d + width, width)
            }
        }
    }

    // MARK: - Naive oracle

    public static func forwardNaive(gate: [Float], up: [Float]) -> [Float] {
        zip(gate, up).map { g, u in Float(Double(g) / (1 + exp(-Double(g))) * Double(u)) }
    }
}
