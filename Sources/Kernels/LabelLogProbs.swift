import CKernelSupport
import Foundation

/// Float32 log-softmax over the vocabulary, gathered at the label: the LM head and the
/// per-token log-prob in one kernel, applied only to the positions that have a label.
///
///   hidden `[positions, hiddenSize]` (final-normed states of the labelled positions)
///   weight `[vocab, hiddenSize]` (LM head), targets `[positions]` (each in 0..<vocab)
///   logps, logSumExp `[positions]`
///
/// Logits are produced `chunkRows` positions at a time into `scratch` (`chunkRows * vocab`
/// floats), so no `[positions, vocab]` tensor is ever alive; backward recomputes each chunk's
/// logits from the saved log-sum-exp (exact in float32, one extra LM-head product).
public enum LabelLogProbs {
    /// Positions per logits chunk (the scratch is `chunkRows * vocab` floats).
    public static let chunkRows = 128

    // MARK: - Forward

    public static func forward(
        hidden: UnsafePointer<Float>, weight: UnsafePointer<Float>, targets: UnsafePointer<Int32>,
        logps: UnsafeMutablePointer<Float>, logSumExp: UnsafeMutablePointer<Float>,
        positions: Int, hiddenSize: Int, vocab: Int, scratch: UnsafeMutablePointer<Float>
    ) {
        var start = 0
        while start < positions {
            let rows = min(chunkRows, positions - start)
            Linear.forward(x: hidden + start * hiddenSize, weight: weight, y: scratch,
                           tokens: rows, inFeatures: hiddenSize, outFeatures: vocab)
            Parallel.forChunks(rows, minimumChunk: 8) { range in
                for i in range {
                    let row = scratch + i * vocab
                    let lse = logSumExpOfRow(row, vocab)
                    logSumExp[start + i] = lse
                    logps[start + i] = row[Int(targets[start + i])] - lse
                }
            }
            start += rows
        }
    }

    @inline(__always)
    static func logSumExpOfRow(_ row: UnsafePointer<Float>, _ count: Int) -> Float {
        dpo_logsumexp(row, count)
    }

    // MARK: - Backward

    /// From `dLogps`, overwrites `dHidden` `[positions, hiddenSize]` and accumulates `dWeight += dlogits^T hidden`,
    /// where `dlogits = dLogp * (onehot(target) - softmax)`.
    public static func backward(
        hidden: UnsafePointer<Float>, weight: UnsafePointer<Float>, targets: UnsafePointer<Int32>,
        logSumExp: UnsafePointer<Float>, dLogps: UnsafePointer<Float>,
        dHidden: UnsafeMutablePointer<Float>, dWeight: UnsafeMutablePointer<Float>?,
        positions: Int, hiddenSize: Int, vocab: Int, scratch: UnsafeMutablePointer<Float>
    ) {
        var start = 0
        while start < positions {
            let rows = min(chunkRows, positions - start)
            Linear.forward(x: hidden + start * hiddenSize, weight: weight, y: scratch,
                           tokens: rows, inFeatures: hiddenSize, outFeatures: vocab)
            Parallel.forChunks(rows, minimumChunk: 8) { range in
                for i in range {
                    let row = scratch + i * vocab
                    let lse = logSumExp[start + i], d = dLogps[start + i]
                    _ = dpo_shifted_exp(row, row, vocab, lse, -d)  // row = -d * softmax
                    row[Int(targets[start + i])] += d
                }
            }
            Linear.backward(x: hidden + start * hiddenSize, weight: weight, dy: scratch,
                            dx: dHidden + start * hiddenSize, dWeight: dWeight,
                            tokens: rows, inFeatures: hiddenSize, outFeatures: vocab, overwriteInput: true)
            start += rows
        }
    }

    // MARK: - Vocabulary panels

    /// Vocabulary rows per weight panel of the panelled kernels (a `[panelRows, hiddenSize]`
    /// float32 panel stays in L2 while every position chunk is multiplied against it).
    public static let panelRows = 512
    /// Positions per chunk of the panelled kernels.
    public static let panelPositions = 256
    /// Floats of scratch the panelled kernels need.
    public static var panelScratchCount: Int { panelRows * panelPositions }

    /// The same log-probs as `forward`, with the LM head supplied one vocabulary panel at a time:
    /// `weightPanel(range)` returns rows `range` of the `[vocab, hiddenSize]` weight as float32
    /// (a conversion from binary16 storage, or a pointer into a float32 weight), so no float32 copy
    /// of the whole head is needed. The log-sum-exp is combined across panels (log-add-exp).
    /// scratch: `panelScratchCount` floats.
    ///
    /// `segments` (ascending, covering `0..<positions`; nil: one) split the positions into runs
    /// whose chunks of `panelPositions` start at the run's first position: several batches' positions
    /// side by side, each multiplied in the chunks it would be alone (the same GEMM shapes, so the
    /// same log-probs), every panel fetched once for all of them.
    public static func forwardPanelled(
        hidden: UnsafePointer<Float>, weightPanel: (Range<Int>) -> UnsafePointer<Float>, targets: UnsafePointer<Int32>,
        logps: UnsafeMutablePointer<Float>, logSumExp: UnsafeMutablePointer<Float>,
        positions: Int, hiddenSize: Int, vocab: Int, scratch: UnsafeMutablePointer<Float>, segments: [Range<Int>]? = nil
    ) {
        if positions == 0 { return }
        logSumExp.update(repeating: -.infinity, count: positions)
        logps.update(repeating: 0, count: positions)  // the target's logit until the end
        forEachLogitPanel(hidden: hidden, weightPanel: weightPanel, positions: positions, hiddenSize: hiddenSize,
                          vocab: vocab, scratch: scratch, segments: segments) { panel, row, position in
            logSumExp[position] = logAddExp(logSumExp[position], dpo_logsumexp(row, panel.count))
            let target = Int(targets[position])
            if panel.contains(target) { logps[position] = row[target - panel.lowerBound] }
        }
        for i in 0..<positions { logps[i] -= logSumExp[i] }
    }

    /// The backward of `forwardPanelled`: overwrites `dHidden` and accumulates `dWeight` (layout
    /// of the whole head; `dWeight` may be nil), recomputing each panel's logits.
    /// `panelFinished(rows)` runs after the last position chunk of each vocabulary panel, in
    /// ascending order: `dWeight`'s rows `rows` receive nothing more from this call (ZeRO-2 sends
    /// them then, instead of holding the whole `[vocab, hiddenSize]` gradient).
    public static func backwardPanelled(
        hidden: UnsafePointer<Float>, weightPanel: (Range<Int>) -> UnsafePointer<Float>, targets: UnsafePointer<Int32>,
        logSumExp: UnsafePointer<Float>, dLogps: UnsafePointer<Float>,
        dHidden: UnsafeMutablePointer<Float>, dWeight: UnsafeMutablePointer<Float>?,
        positions: Int, hiddenSize: Int, vocab: Int, scratch: UnsafeMutablePointer<Float>,
        panelFinished: ((Range<Int>) -> Void)? = nil
    ) {
        dHidden.update(repeating: 0, count: positions * hiddenSize)
        if positions == 0 { return }
        forEachLogitPanel(hidden: hidden, weightPanel: weightPanel, positions: positions, hiddenSize: hiddenSize,
                          vocab: vocab, scratch: scratch) { panel, row, position in
            let d = dLogps[position]
            _ = dpo_shifted_exp(row, row, panel.count, logSumExp[position], -d)  // row = -d * softmax
            let target = Int(targets[position])
            if panel.contains(target) { row[target - panel.lowerBound] += d }
        } afterChunk: { panel, weight, start, rows in
            Linear.backward(x: hidden + start * hiddenSize, weight: weight, dy: scratch,
                            dx: dHidden + start * hiddenSize, dWeight: dWeight.map { $0 + panel.lowerBound * hiddenSize },
                            tokens: rows, inFeatures: hiddenSize, outFeatures: panel.count)
            if start + rows == positions { panelFinished?(panel) }
        }
    }

    /// The walk both panelled kernels share: for every vocabulary panel and every chunk of
    /// `panelPositions` positions (counted from each segment's start), the chunk's logits
    /// `[rows, panel.count]` are computed into `scratch` (forward computes them, backward recomputes
    /// them), `row` runs on each position's logits (in parallel over positions; it may overwrite
    /// them), then `afterChunk` runs once.
    private static func forEachLogitPanel(
        hidden: UnsafePointer<Float>, weightPanel: (Range<Int>) -> UnsafePointer<Float>,
        positions: Int, hiddenSize: Int, vocab: Int, scratch: UnsafeMutablePointer<Float>, segments: [Range<Int>]? = nil,
        row body: (_ panel: Range<Int>, _ row: UnsafeMutablePointer<Float>, _ position: Int) -> Void,
        afterChunk: ((_ panel: Range<Int>, _ weight: UnsafePointer<Float>, _ start: Int, _ rows: Int) -> Void)? = nil
    ) {
        let segments = segments ?? [0..<positions]
        precondition(segments.first?.lowerBound == 0 && segments.last?.upperBound == positions
                     && zip(segments, segments.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound },
                     "LabelLogProbs: segments must cover 0..<\(positions) in order")
        var panelStart = 0
        while panelStart < vocab {
            let panel = panelStart..<min(vocab, panelStart + panelRows), width = panel.count
            let weight = weightPanel(panel)
            for segment in segments {
                var start = segment.lowerBound
                while start < segment.upperBound {
                    let rows = min(panelPositions, segment.upperBound - start)
                    Linear.forward(x: hidden + start * hiddenSize, weight: weight, y: scratch,
                                   tokens: rows, inFeatures: hiddenSize, outFeatures: width)
                    Parallel.forChunks(rows, minimumChunk: 32) { range in
                        for i in range { body(panel, scratch + i * width, start + i) }
                    }
                    afterChunk?(panel, weight, start, rows)
                    start += rows
                }
            }
            panelStart = panel.upperBound
        }
    }

    /// log(exp(a) + exp(b)) for a running log-sum-exp that starts at -inf.
    @inline(__always)
    static func logAddExp(_ a: Float, _ b: Float) -> Float {
        let high = max(a, b), low = min(a, b)
        if low == -.infinity { return high }
        return high + log1pf(expf(low - high))
    }

    // MARK: - Naive oracle

    /// Full logits and a Double log-softmax per position.
    public static func forwardNaive(hidden: [Float], weight: [Float], targets: [Int32], hiddenSize: Int, vocab: Int) -> [Float] {
        targets.indices.map { n in
            var logits = [Double](repeating: 0, count: vocab)
            for v in 0..<vocab {
                var s: Double = 0
                for j in 0..<hiddenSize { s += Double(hidden[n * hiddenSize + j]) * Double(weight[v * hiddenSize + j]) }
                logits[v] = s
            }
            let m = logits.max()!
            let lse = m + log(logits.reduce(0) { $0 + exp($1 - m) })
            return Float(logits[Int(targets[n])] - lse)
        }
    }
}
