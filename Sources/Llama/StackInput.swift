import Kernels

/// What the decoder stack runs on, whichever batch type it came from: `rows x seqLen` token ids,
/// their rotary positions, how attention is masked, and where the LM head is applied.
struct StackInput {
    enum Structure {
        /// Right-padded causal rows (`TokenRows`): row r sees keys `< lengths[r]`.
        case paddedRows(lengths: [Int])
        /// Packed shared-prompt pairs (`SharedPromptRows`).
        case sharedPrompt(segments: [SharedPromptSegments])
    }

    var rows: Int, seqLen: Int
    /// `[rows * seqLen]`.
    var inputIds: [Int32]
    /// `[rows * seqLen]` rotary positions; nil = position t of each row.
    var positions: [Int32]?
    var structure: Structure
    /// Labelled positions: stack token index (a token may appear twice, with two targets),
    /// target id, and the index of its log-prob in the caller's layout (`outputCount` values).
    var labelledIndices: [Int]
    var labelledTargets: [Int32]
    var outputIndices: [Int]
    var outputCount: Int

    var tokens: Int { rows * seqLen }

    init(_ batch: TokenRows) {
        rows = batch.rows; seqLen = batch.seqLen
        inputIds = batch.inputIds
        positions = nil
        structure = .paddedRows(lengths: batch.lengths)
        var indices: [Int] = [], targets: [Int32] = []
        for p in 0..<batch.targetIds.count where batch.targetIds[p] >= 0 { indices.append(p); targets.append(batch.targetIds[p]) }
        labelledIndices = indices; labelledTargets = targets; outputIndices = indices
        outputCount = batch.rows * batch.seqLen
    }

    init(_ batch: SharedPromptRows, heads: Int) {
        rows = batch.pairs; seqLen = batch.seqLen
        inputIds = batch.inputIds
        positions = batch.positions
        structure = .sharedPrompt(segments: batch.segments)
        labelledIndices = batch.labelledIndices; labelledTargets = batch.labelledTargets; outputIndices = batch.outputIndices
        outputCount = batch.pairedRows.rows * batch.pairedRows.seqLen
    }

    /// Floats of attention scratch a forward and a backward need.
    func attentionScratchCount(_ c: LlamaConfig, workers: Int = BLAS.threads) -> Int {
        switch structure {
        case .paddedRows:
            return Attention.recomputeScratchCount(Attention.Shape(rows: rows, seqLen: seqLen, heads: c.numAttentionHeads,
                                                                   kvHeads: c.numKeyValueHeads, headDim: c.headDim), workers: workers)
        case .sharedPrompt:
            return SharedPromptAttention.scratchCount(pairs: rows, seqLen: seqLen, kvHeads: c.numKeyValueHeads, headDim: c.headDim,
                                                      workers: workers)
        }
    }

    /// Floats of one attention scratch slot (a thread's) for this batch's structure.
    func attentionScratchSlot(_ c: LlamaConfig) -> Int {
        switch structure {
        case .paddedRows:
            return Attention.recomputeScratchPerJob(Attention.Shape(rows: rows, seqLen: seqLen, heads: c.numAttentionHeads,
                                                                    kvHeads: c.numKeyValueHeads, headDim: c.headDim))
        case .sharedPrompt:
            return SharedPromptAttention.scratchPerJob(seqLen: seqLen, headDim: c.headDim)
        }
    }

    /// Rows `range` as a batch of their own (labelled positions re-based; output indices unchanged,
    /// so log-probs land where the whole batch's would).
    func rows(_ range: Range<Int>, heads: Int) -> StackInput {
        var slice = self
        slice.rows = range.count
        let tokenRange = (range.lowerBound * seqLen)..<(range.upperBound * seqLen)
        slice.inputIds = Array(inputIds[tokenRange])
        slice.positions = positions.map { Array($0[tokenRange]) }
        switch structure {
        case .paddedRows(let lengths):
            slice.structure = .paddedRows(lengths: Array(lengths[range]))
        case .sharedPrompt(let segments):
            slice.structure = .sharedPrompt(segments: Array(segments[range]))
        }
        slice.labelledIndices = []; slice.labelledTargets = []; slice.outputIndices = []
        for m in labelledIndices.indices where tokenRange.contains(labelledIndices[m]) {
            slice.labelledIndices.append(labelledIndices[m] - tokenRange.lowerBound)
            slice.labelledTargets.append(labelledTargets[m])
            slice.outputIndices.append(outputIndices[m])
        }
        return slice
    }
}
