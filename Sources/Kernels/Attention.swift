import CKernelSupport

/// Causal grouped-query attention over right-padded rows.
///
/// Layouts (token index `r * seqLen + t`):
///   q, output, dq   `[rows * seqLen, heads * headDim]` (q/dq rows `inputStride` apart when fused)
///   k, v, dk, dv    `[rows * seqLen, kvHeads * headDim]` (rows `inputStride` apart when fused)
///   probs           `[rows, heads, seqLen, seqLen]` (softmax weights, saved for backward)
/// Query head h reads key/value head `h / (heads / kvHeads)`. Scores are scaled by
/// `1 / sqrt(headDim)`. In row r with `length = lengths[r]`, query t attends keys
/// `j <= min(t, length - 1)`: keys at `t >= length` are never attended, and padded query rows
/// (t >= length) attend every valid key, as transformers' causal+padding mask does, so they
/// stay finite. Products run as per-head sgemm on strided views; softmax is max-subtracted.
public enum Attention {
    public struct Shape: Sendable, Equatable {
        public var rows: Int, seqLen: Int, heads: Int, kvHeads: Int, headDim: Int
        /// Row stride of q, k, v (and dq, dk, dv) when they are column blocks of one wider
        /// `[tokens, inputStride]` buffer (the fused q|k|v projection); nil = separate buffers.
        public var inputStride: Int?
        public init(rows: Int, seqLen: Int, heads: Int, kvHeads: Int, headDim: Int, inputStride: Int? = nil) {
            self.rows = rows; self.seqLen = seqLen; self.heads = heads; self.kvHeads = kvHeads; self.headDim = headDim
            self.inputStride = inputStride
        }
        public var queryWidth: Int { heads * headDim }
        public var keyWidth: Int { kvHeads * headDim }
        /// Row strides of q/dq and of k, v/dk, dv.
        public var queryStride: Int { inputStride ?? queryWidth }
        public var keyStride: Int { inputStride ?? keyWidth }
        public var probsCount: Int { rows * heads * seqLen * seqLen }
        /// Floats of scratch `backward` needs.
        public var backwardScratchCount: Int { rows * kvHeads * seqLen * seqLen }
        var scale: Float { 1 / Float(headDim).squareRoot() }
    }

    // MARK: - Forward

    public static func forward(
        q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, lengths: UnsafePointer<Int>,
        probs: UnsafeMutablePointer<Float>, output: UnsafeMutablePointer<Float>, shape s: Shape
    ) {
        BLAS.ensureBestCore()
        let group = s.heads / s.kvHeads, T = s.seqLen
        Parallel.withSingleThreadedBLAS { workers in
            Parallel.forEach(s.rows * s.heads, workers: workers) { job in
                let r = job / s.heads, h = job % s.heads, g = h / group
                let length = max(0, min(lengths[r], T))
                attendHead(
                    q: q + r * T * s.queryStride + h * s.headDim, queryStride: s.queryStride, queries: T, queryStart: 0,
                    k: k + r * T * s.keyStride + g * s.headDim, v: v + r * T * s.keyStride + g * s.headDim,
                    keyStride: s.keyStride, keys: length, headDim: s.headDim, scale: s.scale,
                    probs: probs + (r * s.heads + h) * T * T, probsStride: T,
                    output: output + r * T * s.queryWidth + h * s.headDim, outputStride: s.queryWidth)
            }
        }
    }

    /// Queries per block: a block only multiplies against the keys its last query can see,
    /// which skips most of the masked upper triangle (the causal half of the work).
    public static let queryBlock = 64

    /// One head: `probs = softmax(scale * q k^T + causal mask)`, `output = probs v`.
    /// Query i has position `queryStart + i` and sees keys `j <= queryStart + i`, `j < keys`.
    /// probs `[queries, probsStride]`; in each query block, columns past a query's visible keys
    /// up to the block's key count are set to 0 (later columns are not touched).
    public static func attendHead(
        q: UnsafePointer<Float>, queryStride: Int, queries: Int, queryStart: Int,
        k: UnsafePointer<Float>, v: UnsafePointer<Float>, keyStride: Int, keys: Int, headDim: Int, scale: Float,
        probs: UnsafeMutablePointer<Float>, probsStride: Int,
        output: UnsafeMutablePointer<Float>, outputStride: Int
    ) {
        if keys == 0 {
            for i in 0..<queries {
                (probs + i * probsStride).update(repeating: 0, count: probsStride)
                (output + i * outputStride).update(repeating: 0, count: headDim)
            }
            return
        }
        var blockStart = 0
        while blockStart < queries {
            let blockEnd = min(queries, blockStart + queryBlock), rows = blockEnd - blockStart
            let blockKeys = min(keys, queryStart + blockEnd)
            let blockProbs = probs + blockStart * probsStride
            Matmul.gemm(transposeA: false, transposeB: true, m: rows, n: blockKeys, k: headDim, alpha: scale,
                        a: q + blockStart * queryStride, lda: queryStride, b: k, ldb: keyStride,
                        beta: 0, c: blockProbs, ldc: probsStride)
            for i in blockStart..<blockEnd {
                let row = probs + i * probsStride
                let visible = min(queryStart + i + 1, keys)
                dpo_softmax_row(row, visible)
                if visible < blockKeys { (row + visible).update(repeating: 0, count: blockKeys - visible) }
            }
            Matmul.gemm(transposeA: false, transposeB: false, m: rows, n: headDim, k: blockKeys,
                        a: blockProbs, lda: probsStride, b: v, ldb: keyStride, beta: 0,
                        c: output + blockStart * outputStride, ldc: outputStride)
            blockStart = blockEnd
        }
    }

    // MARK: - Backward

    /// Overwrites dq, dk, dv with the gradients from dOutput, using the saved probs.
    /// scratch: `shape.backwardScratchCount` floats.
    public static func backward(
        q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, lengths: UnsafePointer<Int>,
        probs: UnsafePointer<Float>, dOutput: UnsafePointer<Float>,
        dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>, dv: UnsafeMutablePointer<Float>,
        scratch: UnsafeMutablePointer<Float>, shape s: Shape
    ) {
        BLAS.ensureBestCore()
        let group = s.heads / s.kvHeads, T = s.seqLen, hd = s.headDim
        Parallel.withSingleThreadedBLAS { workers in
            // One job per (row, kv head): it alone writes that key/value head's gradients.
            Parallel.forEach(s.rows * s.kvHeads, workers: workers) { job in
                let r = job / s.kvHeads, g = job % s.kvHeads
                let length = max(0, min(lengths[r], T))
                let ks = s.keyStride, qs = s.queryStride
                let kg = k + r * T * ks + g * hd, vg = v + r * T * ks + g * hd
                let dkg = dk + r * T * ks + g * hd, dvg = dv + r * T * ks + g * hd
                for t in 0..<T {
                    (dkg + t * ks).update(repeating: 0, count: hd)
                    (dvg + t * ks).update(repeating: 0, count: hd)
                }
                let dScores = scratch + job * T * T
                for h in (g * group)..<((g + 1) * group) {
                    backwardHead(
                        q: q + r * T * qs + h * hd, queryStride: qs, queries: T, queryStart: 0,
                        k: kg, v: vg, keyStride: ks, keys: length, headDim: hd, scale: s.scale,
                        probs: probs + (r * s.heads + h) * T * T, probsStride: T,
                        dOutput: dOutput + r * T * s.queryWidth + h * hd, dOutputStride: s.queryWidth,
                        dq: dq + r * T * qs + h * hd, dk: dkg, dv: dvg, dScores: dScores)
                }
            }
        }
    }

    /// Backward of one `attendHead` call: overwrites dq `[queries, headDim]` (rows `queryStride`
    /// apart) and accumulates dk, dv `[keys, headDim]` (rows `keyStride` apart), from the saved
    /// probs `[queries, probsStride]` and dOutput (rows `dOutputStride` apart).
    /// dScores: scratch of `queryBlock * probsStride` floats.
    public static func backwardHead(
        q: UnsafePointer<Float>, queryStride qs: Int, queries: Int, queryStart: Int,
        k: UnsafePointer<Float>, v: UnsafePointer<Float>, keyStride ks: Int, keys: Int, headDim hd: Int, scale: Float,
        probs P: UnsafePointer<Float>, probsStride T: Int, dOutput: UnsafePointer<Float>, dOutputStride os: Int,
        dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>, dv: UnsafeMutablePointer<Float>,
        dScores: UnsafeMutablePointer<Float>
    ) {
        if keys == 0 {
            for t in 0..<queries { (dq + t * qs).update(repeating: 0, count: hd) }
            return
        }
        var blockStart = 0
        while blockStart < queries {
            let blockEnd = min(queries, blockStart + queryBlock), rows = blockEnd - blockStart
            let blockKeys = min(keys, queryStart + blockEnd)
            let blockP = P + blockStart * T
            let blockDO = dOutput + blockStart * os
            // dP = dO v^T  [rows, blockKeys];  dv += P^T dO
            Matmul.gemm(transposeA: false, transposeB: true, m: rows, n: blockKeys, k: hd,
                        a: blockDO, lda: os, b: v, ldb: ks, beta: 0, c: dScores, ldc: T)
            Matmul.gemm(transposeA: true, transposeB: false, m: blockKeys, n: hd, k: rows,
                        a: blockP, lda: T, b: blockDO, ldb: os, beta: 1, c: dv, ldc: ks)
            // dS = scale * P * (dP - sum_j P dP)
            for t in blockStart..<blockEnd {
                let p = P + t * T, d = dScores + (t - blockStart) * T
                let visible = min(queryStart + t + 1, keys)
                var dot: Float = 0
                for j in 0..<visible { dot += p[j] * d[j] }
                for j in 0..<visible { d[j] = scale * p[j] * (d[j] - dot) }
                for j in visible..<blockKeys { d[j] = 0 }
            }
            // dq = dS k ; dk += dS^T q
            Matmul.gemm(transposeA: false, transposeB: false, m: rows, n: hd, k: blockKeys,
                        a: dScores, lda: T, b: k, ldb: ks, beta: 0,
                        c: dq + blockStart * qs, ldc: qs)
            Matmul.gemm(transposeA: true, transposeB: false, m: blockKeys, n: hd, k: rows,
                        a: dScores, lda: T, b: q + blockStart * qs, ldb: qs,
                        beta: 1, c: dk, ldc: ks)
            blockStart = blockEnd
        }
    }

    // MARK: - Without saved probs

    /// Floats of scratch `forwardDiscardingProbs` and `backwardRecomputingProbs` need at any
    /// thread count: a slot per (row, kv head) job (see `recomputeScratchCount(_:workers:)`).
    public static func recomputeScratchCount(_ s: Shape) -> Int { s.rows * s.kvHeads * recomputeScratchPerJob(s) }

    /// Scratch for at most `workers` threads: one slot per thread (a job uses its thread's slot),
    /// each one head's softmax weights `[T, T]`, a throwaway output `[T, headDim]` and the score
    /// gradients `[queryBlock, T]`. smollm2-135m, 8 rows x 256 tokens, 3 kv heads, 2 threads:
    /// 2 slots (0.8 MB) instead of 24 (9.4 MB).
    public static func recomputeScratchCount(_ s: Shape, workers: Int) -> Int {
        min(s.rows * s.kvHeads, max(1, workers)) * recomputeScratchPerJob(s)
    }

    /// Floats of one scratch slot.
    public static func recomputeScratchPerJob(_ s: Shape) -> Int { s.seqLen * s.seqLen + s.seqLen * s.headDim + queryBlock * s.seqLen }

    /// `forward` without keeping the softmax weights (each head's live only in the scratch):
    /// the training forward, whose backward recomputes them. No `[rows, heads, T, T]` tensor.
    /// scratch: `recomputeScratchCount(shape, workers: maxWorkers ?? BLAS.threads)` floats; at most
    /// `maxWorkers` threads run (the slots the scratch has).
    public static func forwardDiscardingProbs(
        q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, lengths: UnsafePointer<Int>,
        output: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>, shape s: Shape, maxWorkers: Int? = nil
    ) {
        BLAS.ensureBestCore()
        let group = s.heads / s.kvHeads, T = s.seqLen, hd = s.headDim
        Parallel.withSingleThreadedBLAS { threads in
            Parallel.forEach(s.rows * s.kvHeads, workers: min(threads, maxWorkers ?? threads)) { job, worker in
                let r = job / s.kvHeads, g = job % s.kvHeads
                let length = max(0, min(lengths[r], T))
                let probs = scratch + worker * recomputeScratchPerJob(s)
                for h in (g * group)..<((g + 1) * group) {
                    attendHead(
                        q: q + r * T * s.queryStride + h * hd, queryStride: s.queryStride, queries: T, queryStart: 0,
                        k: k + r * T * s.keyStride + g * hd, v: v + r * T * s.keyStride + g * hd,
                        keyStride: s.keyStride, keys: length, headDim: hd, scale: s.scale, probs: probs, probsStride: T,
                        output: output + r * T * s.queryWidth + h * hd, outputStride: s.queryWidth)
                }
            }
        }
    }

    /// `backward` that recomputes each head's softmax weights from q and k (one more QK^T and PV
    /// product per head, about 1% of a training step) instead of reading saved ones.
    /// With `output`, the recomputed attention output lands there (the layout and the very bits
    /// of `forwardDiscardingProbs`' output: the same `attendHead` calls), so a caller need not
    /// keep the forward's; without it, it is thrown away. scratch: as `forwardDiscardingProbs`.
    public static func backwardRecomputingProbs(
        q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, lengths: UnsafePointer<Int>,
        dOutput: UnsafePointer<Float>,
        dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>, dv: UnsafeMutablePointer<Float>,
        scratch: UnsafeMutablePointer<Float>, shape s: Shape, output: UnsafeMutablePointer<Float>? = nil, maxWorkers: Int? = nil
    ) {
        BLAS.ensureBestCore()
        let group = s.heads / s.kvHeads, T = s.seqLen, hd = s.headDim
        Parallel.withSingleThreadedBLAS { threads in
            Parallel.forEach(s.rows * s.kvHeads, workers: min(threads, maxWorkers ?? threads)) { job, worker in
                let r = job / s.kvHeads, g = job % s.kvHeads
                let length = max(0, min(lengths[r], T))
                let ks = s.keyStride, qs = s.queryStride
                let kg = k + r * T * ks + g * hd, vg = v + r * T * ks + g * hd
                let dkg = dk + r * T * ks + g * hd, dvg = dv + r * T * ks + g * hd
                for t in 0..<T {
                    (dkg + t * ks).update(repeating: 0, count: hd)
                    (dvg + t * ks).update(repeating: 0, count: hd)
                }
                let probs = scratch + worker * recomputeScratchPerJob(s), discarded = probs + T * T, dScores = discarded + T * hd
                for h in (g * group)..<((g + 1) * group) {
                    let qh = q + r * T * qs + h * hd
                    let out = output.map { ($0 + r * T * s.queryWidth + h * hd, s.queryWidth) } ?? (discarded, hd)
                    attendHead(q: qh, queryStride: qs, queries: T, queryStart: 0, k: kg, v: vg, keyStride: ks, keys: length,
                               headDim: hd, scale: s.scale, probs: probs, probsStride: T, output: out.0, outputStride: out.1)
                    backwardHead(
                        q: qh, queryStride: qs, queries: T, queryStart: 0,
                        k: kg, v: vg, keyStride: ks, keys: length, headDim: hd, scale: s.scale,
                        probs: probs, probsStride: T,
                        dOutput: dOutput + r * T * s.queryWidth + h * hd, dOutputStride: s.queryWidth,
                        dq: dq + r * T * qs + h * hd, dk: dkg, dv: dvg, dScores: dScores)
                }
            }
        }
    }

    // MARK: - Naive oracle

    /// Loops over every (row, head, query, key) in Double; returns the output `[rows*seqLen, heads*headDim]`.
    public static func forwardNaive(q: [Float], k: [Float], v: [Float], lengths: [Int], shape s: Shape) -> [Float] {
        var out = [Float](repeating: 0, count: s.rows * s.seqLen * s.queryWidth)
        let group = s.heads / s.kvHeads
        for r in 0..<s.rows {
            let length = max(0, min(lengths[r], s.seqLen))
            for h in 0..<s.heads {
                let g = h / group
                for t in 0..<s.seqLen {
                    let visible = min(t + 1, length)
                    if visible == 0 { continue }
                    var scores = [Double](repeating: 0, count: visible)
                    for j in 0..<visible {
                        var dot: Double = 0
                        for d in 0..<s.headDim {
                            dot += Double(q[(r * s.seqLen + t) * s.queryStride + h * s.headDim + d])
                                * Double(k[(r * s.seqLen + j) * s.keyStride + g * s.headDim + d])
                        }
                        scores[j] = dot / Double(s.headDim).squareRoot()
                    }
                    let m = scores.max()!
                    let e = scores.map { exp($0 - m) }
                    let z = e.reduce(0, +)
                    for d in 0..<s.headDim {
                        var acc: Double = 0
                        for j in 0..<visible { acc += e[j] / z * Double(v[(r * s.seqLen + j) * s.keyStride + g * s.headDim + d]) }
                        out[(r * s.seqLen + t) * s.queryWidth + h * s.headDim + d] = Float(acc)
                    }
                }
            }
        }
        return out
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
