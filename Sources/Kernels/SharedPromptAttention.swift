/// Where the parts of one preference pair sit in a packed shared-prompt row.
///
/// The chosen row (input positions `[0, chosenLength)`) and the rejected row (`[0, rejectedLength)`)
/// agree on their first `promptLength` tokens. The packed row holds the shared prefix once:
///   packed `[0, promptLength)`            the shared prefix (positions 0..<P)
///   packed `[promptLength, chosenLength)` the rest of the chosen row (positions P..<Lc)
///   packed `[chosenLength, packedLength)` the rest of the rejected row (positions P..<Lr)
/// so the chosen row is a plain causal prefix of the packed row, and the rejected part attends the
/// shared prefix plus itself.
public struct SharedPromptSegments: Sendable, Equatable {
    /// P: tokens shared by both rows.
    public var promptLength: Int
    /// Lc: valid positions of the chosen row (P <= Lc).
    public var chosenLength: Int
    /// Lr: valid positions of the rejected row (P <= Lr).
    public var rejectedLength: Int

    public init(promptLength: Int, chosenLength: Int, rejectedLength: Int) {
        precondition(promptLength >= 0 && promptLength <= chosenLength && promptLength <= rejectedLength,
                     "SharedPromptSegments: the shared prefix must fit in both rows")
        self.promptLength = promptLength
        self.chosenLength = chosenLength
        self.rejectedLength = rejectedLength
    }

    /// Valid positions of the packed row: Lc + Lr - P.
    public var packedLength: Int { chosenLength + rejectedLength - promptLength }
    /// Rejected queries (the rejected row's positions past the prefix).
    public var rejectedQueries: Int { rejectedLength - promptLength }
    /// Packed index of rejected-row position `t`.
    @inline(__always) public func packedIndexOfRejected(_ t: Int) -> Int { t < promptLength ? t : chosenLength + t - promptLength }
}

/// Causal grouped-query attention over packed shared-prompt rows (see `SharedPromptSegments`):
/// exactly the attention of the plain chosen and rejected rows, with the prefix's queries, keys
/// and values computed once per pair.
///
/// Layouts (token index `pair * seqLen + packed index`, `seqLen` >= every packed length):
///   q, output, dq  `[pairs * seqLen, heads * headDim]` (q/dq rows `inputStride` apart when fused)
///   k, v, dk, dv   `[pairs * seqLen, kvHeads * headDim]` (rows `inputStride` apart when fused)
/// The softmax weights are not kept: each head's live in the scratch, and backward recomputes
/// them (one more QK^T and PV product per head). Padded packed positions get a zero output and a zero dq. The rejected part runs on a gathered
/// copy of its keys and values (prefix + own, `[Lr, headDim]` per kv head) in the scratch; their
/// gradients are scattered back, so the prefix's dk/dv receive both rows' contributions.
public enum SharedPromptAttention {
    /// Floats of scratch `forward` and `backward` need at any thread count (a slot per job).
    public static func scratchCount(pairs: Int, seqLen: Int, kvHeads: Int, headDim: Int) -> Int {
        pairs * kvHeads * scratchPerJob(seqLen: seqLen, headDim: headDim)
    }

    /// Scratch for at most `workers` threads: one slot per thread (a job uses its thread's slot).
    public static func scratchCount(pairs: Int, seqLen: Int, kvHeads: Int, headDim: Int, workers: Int) -> Int {
        min(pairs * kvHeads, max(1, workers)) * scratchPerJob(seqLen: seqLen, headDim: headDim)
    }

    @inline(__always)
    /// Floats of one slot: gathered k, v, dk, dv `[S, headDim]` each, score gradients `[queryBlock, S]`,
    /// one head's softmax weights `[S, S]` (never kept: backward recomputes them) and a throwaway output `[S, headDim]`.
    public static func scratchPerJob(seqLen: Int, headDim: Int) -> Int {
        5 * seqLen * headDim + Attention.queryBlock * seqLen + seqLen * seqLen
    }

    // MARK: - Forward

    /// scratch: `scratchCount(..., workers: maxWorkers ?? BLAS.threads)` floats; at most `maxWorkers`
    /// threads run (the slots the scratch has).
    public static func forward(
        q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, segments: UnsafePointer<SharedPromptSegments>,
        output: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>, shape s: Attention.Shape, maxWorkers: Int? = nil
    ) {
        BLAS.ensureBestCore()
        let group = s.heads / s.kvHeads, S = s.seqLen, hd = s.headDim
        let qs = s.queryStride, ks = s.keyStride, ow = s.queryWidth
        Parallel.withSingleThreadedBLAS { threads in
            // One job per (pair, kv head): its query heads share one gathered copy of the keys.
            Parallel.forEach(s.rows * s.kvHeads, workers: min(threads, maxWorkers ?? threads)) { job, worker in
                let pair = job / s.kvHeads, g = job % s.kvHeads, seg = segments[pair]
                let base = pair * S, lc = seg.chosenLength, lr = seg.rejectedLength, p = seg.promptLength
                let kg = k + base * ks + g * hd, vg = v + base * ks + g * hd
                let gathered = scratch + worker * scratchPerJob(seqLen: S, headDim: hd)
                let gk = gathered, gv = gathered + S * hd, probs = gathered + 5 * S * hd + Attention.queryBlock * S
                gatherRejected(kg, vg, stride: ks, segments: seg, headDim: hd, into: gk, gv)
                for h in (g * group)..<((g + 1) * group) {
                    let qh = q + base * qs + h * hd, outh = output + base * ow + h * hd
                    Attention.attendHead(q: qh, queryStride: qs, queries: lc, queryStart: 0,
                                         k: kg, v: vg, keyStride: ks, keys: lc, headDim: hd, scale: s.scale,
                                         probs: probs, probsStride: lc, output: outh, outputStride: ow)
                    if lr > p {
                        Attention.attendHead(q: qh + lc * qs, queryStride: qs, queries: lr - p, queryStart: p,
                                             k: gk, v: gv, keyStride: hd, keys: lr, headDim: hd, scale: s.scale,
                                             probs: probs, probsStride: lr, output: outh + lc * ow, outputStride: ow)
                    }
                    for t in seg.packedLength..<S { (outh + t * ow).update(repeating: 0, count: hd) }
                }
            }
        }
    }

    // MARK: - Backward

    /// Overwrites dq, dk, dv with the gradients from dOutput, recomputing each head's softmax weights.
    /// With `output`, the recomputed attention output lands there (the same `attendHead` calls,
    /// so the bits of `forward`'s output, padded positions zero). scratch: as `forward`.
    public static func backward(
        q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, segments: UnsafePointer<SharedPromptSegments>,
        dOutput: UnsafePointer<Float>,
        dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>, dv: UnsafeMutablePointer<Float>,
        scratch: UnsafeMutablePointer<Float>, shape s: Attention.Shape, output: UnsafeMutablePointer<Float>? = nil, maxWorkers: Int? = nil
    ) {
        BLAS.ensureBestCore()
        let group = s.heads / s.kvHeads, S = s.seqLen, hd = s.headDim
        let qs = s.queryStride, ks = s.keyStride, ow = s.queryWidth
        Parallel.withSingleThreadedBLAS { threads in
            // One job per (pair, kv head): it alone writes that key/value head's gradients of the pair.
            Parallel.forEach(s.rows * s.kvHeads, workers: min(threads, maxWorkers ?? threads)) { job, worker in
                let pair = job / s.kvHeads, g = job % s.kvHeads, seg = segments[pair]
                let base = pair * S, lc = seg.chosenLength, lr = seg.rejectedLength, p = seg.promptLength
                let kg = k + base * ks + g * hd, vg = v + base * ks + g * hd
                let dkg = dk + base * ks + g * hd, dvg = dv + base * ks + g * hd
                for t in 0..<S {
                    (dkg + t * ks).update(repeating: 0, count: hd)
                    (dvg + t * ks).update(repeating: 0, count: hd)
                }
                let gathered = scratch + worker * scratchPerJob(seqLen: S, headDim: hd)
                let gk = gathered, gv = gathered + S * hd, gdk = gathered + 2 * S * hd, gdv = gathered + 3 * S * hd
                let discarded = gathered + 4 * S * hd, dScores = discarded + S * hd, probs = dScores + Attention.queryBlock * S
                gatherRejected(kg, vg, stride: ks, segments: seg, headDim: hd, into: gk, gv)
                gdk.update(repeating: 0, count: lr * hd)
                gdv.update(repeating: 0, count: lr * hd)
                for h in (g * group)..<((g + 1) * group) {
                    let qh = q + base * qs + h * hd, dqh = dq + base * qs + h * hd
                    let dOh = dOutput + base * ow + h * hd
                    // Where the recomputed output goes: the caller's rows, or a throwaway [S, headDim].
                    let outh = output.map { $0 + base * ow + h * hd } ?? discarded, os = output == nil ? hd : ow
                    Attention.attendHead(q: qh, queryStride: qs, queries: lc, queryStart: 0,
                                         k: kg, v: vg, keyStride: ks, keys: lc, headDim: hd, scale: s.scale,
                                         probs: probs, probsStride: lc, output: outh, outputStride: os)
                    Attention.backwardHead(q: qh, queryStride: qs, queries: lc, queryStart: 0,
                                           k: kg, v: vg, keyStride: ks, keys: lc, headDim: hd, scale: s.scale,
                                           probs: probs, probsStride: lc, dOutput: dOh, dOutputStride: ow,
                                           dq: dqh, dk: dkg, dv: dvg, dScores: dScores)
                    if lr > p {
                        Attention.attendHead(q: qh + lc * qs, queryStride: qs, queries: lr - p, queryStart: p,
                                             k: gk, v: gv, keyStride: hd, keys: lr, headDim: hd, scale: s.scale,
                                             probs: probs, probsStride: lr, output: output == nil ? discarded : outh + lc * ow,
                                             outputStride: os)
                        Attention.backwardHead(q: qh + lc * qs, queryStride: qs, queries: lr - p, queryStart: p,
                                               k: gk, v: gv, keyStride: hd, keys: lr, headDim: hd, scale: s.scale,
                                               probs: probs, probsStride: lr, dOutput: dOh + lc * ow, dOutputStride: ow,
                                               dq: dqh + lc * qs, dk: gdk, dv: gdv, dScores: dScores)
                    }
                    for t in seg.packedLength..<S { (dqh + t * qs).update(repeating: 0, count: hd) }
                    if output != nil { for t in seg.packedLength..<S { (outh + t * ow).update(repeating: 0, count: hd) } }
                }
                // The rejected part's key/value gradients back to their packed rows (the prefix's add up).
                for t in 0..<lr {
                    let row = seg.packedIndexOfRejected(t)
                    let dkRow = dkg + row * ks, dvRow = dvg + row * ks, gdkRow = gdk + t * hd, gdvRow = gdv + t * hd
                    for d in 0..<hd {
                        dkRow[d] += gdkRow[d]
                        dvRow[d] += gdvRow[d]
                    }
                }
            }
        }
    }

    // MARK: - Helpers

    /// Copies the keys and values the rejected part sees (prefix, then its own rows) into
    /// contiguous `[Lr, headDim]` buffers.
    @inline(__always)
    static func gatherRejected(_ k: UnsafePointer<Float>, _ v: UnsafePointer<Float>, stride: Int, segments seg: SharedPromptSegments,
                               headDim hd: Int, into gk: UnsafeMutablePointer<Float>, _ gv: UnsafeMutablePointer<Float>) {
        guard seg.rejectedLength > seg.promptLength else { return }
        for t in 0..<seg.rejectedLength {
            let row = seg.packedIndexOfRejected(t)
            (gk + t * hd).update(from: k + row * stride, count: hd)
            (gv + t * hd).update(from: v + row * stride, count: hd)
        }
    }
}
