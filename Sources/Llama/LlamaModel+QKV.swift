import Kernels

// The family-specific steps between the q|k|v projection and RoPE: Qwen2's q/k/v biases and
// Qwen3's per-head q/k RMSNorm (applied to the projections before rotation, as transformers does).

extension LlamaModel {
    /// `y[t, :] += bias` for `tokens` rows of `width` (contiguous rows).
    func addBias(_ y: UnsafeMutablePointer<Float>, _ bias: UnsafePointer<Float>, tokens: Int, width: Int) {
        Parallel.forChunks(tokens, minimumChunk: 64) { range in
            for t in range {
                let row = y + t * width
                for j in 0..<width { row[j] += bias[j] }
            }
        }
    }

    /// `dBias += sum over tokens of dy[t, :]` (one writer per column, tokens in order).
    func biasBackward(_ dy: UnsafePointer<Float>, dBias: UnsafeMutablePointer<Float>, tokens: Int, width: Int) {
        Parallel.forChunks(width, minimumChunk: 64) { columns in
            for t in 0..<tokens {
                let row = dy + t * width
                for j in columns { dBias[j] += row[j] }
            }
        }
    }

    /// Copies the raw q|k columns of `qkv` (rows `stride` apart) into `preNorm` `[tokens, Q + K]`
    /// for backward, then writes q_norm(q) and k_norm(k) back into `qkv`. `weights` = q_norm | k_norm.
    func queryKeyNormForward(_ qkv: UnsafeMutablePointer<Float>, stride: Int, preNorm: UnsafeMutablePointer<Float>,
                             tokens: Int, weights: UnsafePointer<Float>) {
        let c = config, qw = c.qDim, width = c.qDim + c.kvDim
        Parallel.forChunks(tokens, minimumChunk: 64) { range in
            for t in range { (preNorm + t * width).update(from: qkv + t * stride, count: width) }
        }
        HeadNorm.forward(x: preNorm, xStride: width, y: qkv, yStride: stride, weight: weights,
                         shape: .init(tokens: tokens, heads: c.numAttentionHeads, headDim: c.headDim), eps: c.rmsNormEps)
        HeadNorm.forward(x: preNorm + qw, xStride: width, y: qkv + qw, yStride: stride, weight: weights + c.headDim,
                         shape: .init(tokens: tokens, heads: c.numKeyValueHeads, headDim: c.headDim), eps: c.rmsNormEps)
    }

    /// In place on the q|k columns of `dQKV`: gradient after the norms -> gradient before them;
    /// q_norm and k_norm weight gradients accumulate into `dWeights` `[2 * headDim]`.
    func queryKeyNormBackward(_ dQKV: UnsafeMutablePointer<Float>, stride: Int, preNorm: UnsafePointer<Float>, tokens: Int,
                              weights: UnsafePointer<Float>, dWeights: UnsafeMutablePointer<Float>) {
        let c = config, qw = c.qDim, width = c.qDim + c.kvDim
        HeadNorm.backward(x: preNorm, xStride: width, gradient: dQKV, gStride: stride, weight: weights, dWeight: dWeights,
                          shape: .init(tokens: tokens, heads: c.numAttentionHeads, headDim: c.headDim), eps: c.rmsNormEps)
        HeadNorm.backward(x: preNorm + qw, xStride: width, gradient: dQKV + qw, gStride: stride, weight: weights + c.headDim,
                          dWeight: dWeights + c.headDim,
                          shape: .init(tokens: tokens, heads: c.numKeyValueHeads, headDim: c.headDim), eps: c.rmsNormEps)
    }
}
