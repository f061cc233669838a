import CKernelSupport

/// The optimizer pass as one threaded, vectorised sweep: unscale and clip the gradient,
/// AdamW on the fp32 master weight and both moments, and the new weight written into the
/// model's working copy (fp32, or rounded to binary16), per element, in one trip over memory
/// (AdamW.c; AVX-512 where present).
///
/// The elements are split into contiguous chunks over `BLAS.threads` threads; each element's
/// float operations are those of the plain sequential loops in the same order, so the result
/// does not depend on the thread count, the chunking or the vector path.
public enum AdamWSweep {
    /// Per-step constants, as float32 (see `dpo_adamw_hyper`).
    public typealias Hyper = dpo_adamw_hyper

    /// Where the updated weights also go (the model's working weights at the same offsets).
    public enum Output {
        case none
        case fp32(UnsafeMutablePointer<Float>)
        /// IEEE binary16 bit patterns.
        case fp16(UnsafeMutablePointer<UInt16>)
    }

    /// The arrays of one sweep, all [count] from their base (same element order).
    public struct Arrays {
        public var weights: UnsafeMutablePointer<Float>
        public var gradients: UnsafePointer<Float>
        /// Where the unscaled, clipped gradients go (may be `gradients`' memory); nil: not kept.
        public var gradientsOut: UnsafeMutablePointer<Float>?
        public var firstMoment: UnsafeMutablePointer<Float>
        public var secondMoment: UnsafeMutablePointer<Float>
        public var output: Output

        public init(weights: UnsafeMutablePointer<Float>, gradients: UnsafePointer<Float>, gradientsOut: UnsafeMutablePointer<Float>?,
                    firstMoment: UnsafeMutablePointer<Float>, secondMoment: UnsafeMutablePointer<Float>, output: Output) {
            self.weights = weights
            self.gradients = gradients
            self.gradientsOut = gradientsOut
            self.firstMoment = firstMoment
            self.secondMoment = secondMoment
            self.output = output
        }
    }

    /// Elements below which a sweep stays on the calling thread.
    public static let minimumChunk = 1 << 15

    /// Runs the sweep over elements `0..<count`; weight decay applies on the elements of the
    /// `decaying` runs (sorted, disjoint ranges), not elsewhere.
    public static func run(_ hyper: Hyper, _ arrays: Arrays, count: Int, decaying runs: [(range: Range<Int>, decays: Bool)]) {
        Parallel.forChunks(count, minimumChunk: minimumChunk) { chunk in
            for run in runs where run.range.overlaps(chunk) {
                let part = run.range.clamped(to: chunk)
                sweep(hyper, arrays, part, decays: run.decays)
            }
        }
    }

    /// One contiguous part on the calling thread.
    private static func sweep(_ hyper: Hyper, _ a: Arrays, _ part: Range<Int>, decays: Bool) {
        var h = hyper
        let o = part.lowerBound
        var out32: UnsafeMutablePointer<Float>?
        var out16: UnsafeMutablePointer<UInt16>?
        switch a.output {
        case .none: break
        case .fp32(let p): out32 = p + o
        case .fp16(let p): out16 = p + o
        }
        dpo_adamw_sweep(&h, decays ? 1 : 0, a.weights + o, a.gradients + o, a.gradientsOut.map { $0 + o }, a.firstMoment + o,
                        a.secondMoment + o, out32, out16, part.count)
    }

    /// Test hook: `true` runs the portable C loops instead of AVX-512; returns whether AVX-512 is in use afterwards.
    @discardableResult
    public static func forcePortable(_ portable: Bool) -> Bool { dpo_adamw_force_portable(portable ? 1 : 0) == 1 }
}

/// Threaded sum of squares for the global gradient norm, deterministic: fixed blocks of
/// `blockSize` elements (whatever the thread count), each block's sum in fixed double lanes
/// (`dpo_sum_squares`), the block sums added in block order. The same bits at 1 and N threads.
public enum SumOfSquares {
    public static let blockSize = 1 << 16

    /// Sum over i of (Double(x[i] * scale))^2; infinite or NaN when any x[i] * scale is.
    public static func of(_ x: UnsafeBufferPointer<Float>, scale: Float = 1) -> Double {
        guard let base = x.baseAddress, !x.isEmpty else { return 0 }
        let blocks = (x.count + blockSize - 1) / blockSize
        if blocks == 1 { return dpo_sum_squares(base, x.count, scale) }
        // [blocks] partial sums, ~16 KB per 135M floats: small, so a per-call array is fine.
        var partials = [Double](repeating: 0, count: blocks)
        partials.withUnsafeMutableBufferPointer { out in
            Parallel.forChunks(blocks, minimumChunk: 1) { range in
                for b in range {
                    let start = b * blockSize
                    out[b] = dpo_sum_squares(base + start, min(blockSize, x.count - start), scale)
                }
            }
        }
        return partials.reduce(0, +)
    }
}
