import Kernels

/// Float32 views of one decoder layer's weights, for one forward or backward pass over it.
///
/// Under fp16 the layer's whole layout group (norms, [q; k; v], biases, q|k norms, o_proj,
/// [gate; up], down_proj: 3.5M values on smollm2-135m) is converted in one threaded pass into
/// the layer scratch, instead of one pass per matrix, norm and bias. Why: each threaded pass
/// is a fork/join hand-off to OpenBLAS's worker, and a worker that is not running right then
/// (it went to sleep, or a busy host descheduled it) keeps the caller spinning in
/// sched_yield; the per-matrix passes were four hand-offs per layer per pass (passes: the
/// policy forward, the reference's forward, backward). Converting is exact, so
/// every GEMM and norm sees the same float32 values as before, bit for bit.
///
/// Under fp32 the views point into the working weights. Valid until the next `layerWeights`
/// call (a `matrix` call in between writes its values where they already are).
struct LayerWeights {
    /// Float32 values of the layout range `range`.
    let base: UnsafeMutablePointer<Float>
    let range: Range<Int>

    /// Float32 values of the parameter at layout `offset` (inside the layer).
    @inline(__always)
    subscript(_ offset: Int) -> UnsafeMutablePointer<Float> {
        precondition(range.contains(offset), "parameter offset \(offset) is outside the layer's range \(range)")
        return base + (offset - range.lowerBound)
    }
}

extension LlamaModel {
    /// The float32 weights of decoder layer `layer` (a conversion under fp16; see `LayerWeights`).
    func layerWeights(_ layer: Int) -> LayerWeights {
        let range = layout.groupRanges[1 + layer]
        if let weights32 { return LayerWeights(base: weights32.pointer + range.lowerBound, range: range) }
        let source = weights16!.pointer + range.lowerBound, scratch = layerScratch!.pointer
        precondition(range.count <= layerScratch!.count, "layer \(layer) of \(range.count) values exceeds the conversion scratch")
        conversionCounts.layers += 1
        Parallel.forChunks(range.count, minimumChunk: 1 << 16) { part in
            Half.toFloat(source + part.lowerBound, scratch + part.lowerBound, count: part.count)
        }
        return LayerWeights(base: scratch, range: range)
    }
}
