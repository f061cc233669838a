import Kernels

/// Global-norm gradient clipping, as `torch.nn.utils.clip_grad_norm_`.
///
/// The step itself does not scale the gradients here: it measures the norm (`globalNorm`),
/// takes the `factor`, and hands both factors to the optimizer's fused sweep
/// (`FlatOptimizer.step(weights:gradients:scaling:...)`), which applies them on its way through.
public enum GradientClipping {
    /// The L2 norm of `unscale` x the flat gradient, accumulated in Double over fixed blocks
    /// and threads (`SumOfSquares`: the same bits at any thread count). Infinite or NaN when
    /// any element is (which is how non-finite steps are detected).
    public static func globalNorm(_ gradients: UnsafeBufferPointer<Float>, unscale: Float = 1) -> Double {
        SumOfSquares.of(gradients, scale: unscale).squareRoot()
    }

    /// PyTorch's factor maxNorm / (norm + 1e-6) as a Float when it is below 1; 1 otherwise
    /// (no clipping: `maxNorm <= 0`, a norm within bounds, or a non-finite norm).
    public static func factor(norm: Double, maxNorm: Double) -> Float {
        guard maxNorm > 0, norm.isFinite else { return 1 }
        let coefficient = maxNorm / (norm + 1e-6)
        return coefficient < 1 ? Float(coefficient) : 1
    }

    /// Scales `gradients` so their norm is at most `maxNorm`; returns the pre-clip norm.
    /// `maxNorm <= 0`: no clipping.
    @discardableResult
    public static func clip(_ gradients: UnsafeMutableBufferPointer<Float>, maxNorm: Double) -> Double {
        let norm = globalNorm(UnsafeBufferPointer(gradients))
        scale(gradients, unscale: 1, clip: factor(norm: norm, maxNorm: maxNorm))
        return norm
    }

    /// g <- (g x unscale) x clip, threaded (the fused sweep's first two operations, for steps that
    /// skip the update and for SGD). Factors of 1 are skipped (a multiplication by 1 is exact).
    public static func scale(_ gradients: UnsafeMutableBufferPointer<Float>, unscale: Float, clip: Float) {
        guard unscale != 1 || clip != 1, let base = gradients.baseAddress else { return }
        Parallel.forChunks(gradients.count, minimumChunk: 1 << 16) { range in
            for i in range { base[i] = (base[i] * unscale) * clip }
        }
    }
}
