import Kernels

/// One decoder layer's weights for one forward or backward pass over it: float32 views of its
/// vectors (norms, biases, q|k norms) and its matrices as the linear kernels read them.
///
/// Under fp16, where `HalfMatmul` runs (AVX-512), the matrices stay binary16: the GEMMs convert
/// them while packing (no float32 copy, no pass of its own), and only the vectors, a few
/// thousand values, are converted into the layer scratch. Elsewhere (or with
/// `HalfMatmul.enabled` off) the layer's whole layout group (3.5M values on smollm2-135m) is
/// converted in one threaded pass, instead of one pass per matrix, norm and bias. Why one:
/// each threaded pass is a fork/join hand-off to OpenBLAS's worker, and a worker that is not
/// running right then keeps the caller spinning in sched_yield. Converting is exact, so the
/// kernels then see the same float32 values as an fp32 model of the rounded weights, bit for bit.
///
/// Under fp32 the views point into the working weights. Valid until the next `layerWeights`
/// call (a `matrix` call in between writes its values where they already are).
struct LayerWeights {
    /// Float32 values of the layout range `range` (under direct binary16 matrices: of `vectors` only).
    let base: UnsafeMutablePointer<Float>
    let range: Range<Int>
    /// The binary16 working weights of `range` when the matrices are read directly, else nil.
    let half: UnsafePointer<UInt16>?
    /// With `half`: the layout ranges converted into `base` (the layer's vectors).
    let vectors: [Range<Int>]

    /// Float32 values of the parameter at layout `offset` (inside the layer; a vector when the
    /// matrices are binary16).
    @inline(__always)
    subscript(_ offset: Int) -> UnsafeMutablePointer<Float> {
        precondition(range.contains(offset), "parameter offset \(offset) is outside the layer's range \(range)")
        precondition(half == nil || vectors.contains { $0.contains(offset) },
                     "parameter offset \(offset) is a binary16 matrix here: read it through `matrix`")
        return base + (offset - range.lowerBound)
    }

    /// The matrix at layout `offset` as `Linear` reads it.
    @inline(__always)
    func matrix(_ offset: Int) -> WeightMatrix {
        precondition(range.contains(offset), "matrix offset \(offset) is outside the layer's range \(range)")
        if let half { return .binary16(half + (offset - range.lowerBound)) }
        return .float32(base + (offset - range.lowerBound))
    }
}

extension LlamaModel {
    /// The weights of decoder layer `layer` (conversions under fp16; see `LayerWeights`).
    func layerWeights(_ layer: Int) -> LayerWeights {
        let range = layout.groupRanges[1 + layer]
        if let weights32 { return LayerWeights(base: weights32.pointer + range.lowerBound, range: range, half: nil, vectors: []) }
        let source = weights16!.pointer + range.lowerBound, scratch = layerScratch!.pointer
        precondition(range.count <= layerScratch!.count, "layer \(layer) of \(range.count) values exceeds the conversion scratch")
        conversionCounts.layers += 1
        if HalfMatmul.enabled {
            let vectors = layerVectorRanges(layer)
            for vector in vectors {
                Half.toFloat(weights16!.pointer + vector.lowerBound, scratch + (vector.lowerBound - range.lowerBound), count: vector.count)
            }
            return LayerWeights(base: scratch, range: range, half: UnsafePointer(source), vectors: vectors)
        }
        Parallel.forChunks(range.count, minimumChunk: 1 << 16) { part in
            Half.toFloat(source + part.lowerBound, scratch + part.lowerBound, count: part.count)
        }
        return LayerWeights(base: scratch, range: range, half: nil, vectors: [])
    }

    /// Layout ranges of layer `layer`'s vectors (every one-dimensional parameter: both norms,
    /// the q, k, v biases of Qwen2, the q and k norms of Qwen3), adjacent ones merged.
    func layerVectorRanges(_ layer: Int) -> [Range<Int>] {
        var ranges: [Range<Int>] = []
        for entry in layout.entries where entry.group == 1 + layer && entry.shape.count == 1 {
            if let last = ranges.last, last.upperBound == entry.offset {
                ranges[ranges.count - 1] = last.lowerBound..<entry.range.upperBound
            } else {
                ranges.append(entry.range)
            }
        }
        return ranges
    }
}
