/// Global-norm gradient clipping, as `torch.nn.utils.clip_grad_norm_`.
public enum GradientClipping {
    /// The L2 norm of the whole flat gradient, accumulated in Double.
    /// Infinite or NaN when any element is (which is how non-finite steps are detected).
    public static func globalNorm(_ gradients: UnsafeBufferPointer<Float>) -> Double {
        // Four partial sums in Float blocks, widened per block: exact enough and vectorisable.
        var total = 0.0
        var index = 0
        let block = 4096
        while index < gradients.count {
            let end = min(index + block, gradients.count)
            var partial: Float = 0
            for i in index..<end { partial += gradients[i] * gradients[i] }
            total += Double(partial)
            index = end
        }
        return total.squareRoot()
    }

    /// Scales `gradients` so their norm is at most `maxNorm` (PyTorch's factor
    /// maxNorm / (norm + 1e-6), clamped to 1); returns the pre-clip norm. `maxNorm <= 0`: no clipping.
    @discardableResult
    public static func clip(_ gradients: UnsafeMutableBufferPointer<Float>, maxNorm: Double) -> Double {
        let norm = globalNorm(UnsafeBufferPointer(gradients))
        guard maxNorm > 0, norm.isFinite else { return norm }
        let coefficient = maxNorm / (norm + 1e-6)
        if coefficient < 1 {
            let scale = Float(coefficient)
            for i in 0..<gradients.count { gradients[i] *= scale }
        }
        return norm
    }
}
