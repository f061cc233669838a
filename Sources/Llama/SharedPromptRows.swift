import Kernels

/// A concatenated preference batch (chosen rows `0..<B`, rejected rows `B..<2B`) packed so that
/// each pair's shared prefix (the prompt, plus any completion tokens both rows start with) runs
/// through the model once.
///
/// Packed row i (`seqLen` positions, right-padded) holds the shared prefix, the rest of the chosen
/// row, then the rest of the rejected row (see `SharedPromptSegments`); the rejected part keeps its
/// own positions (P, P+1, ...) and attends only the prefix and itself, so by the causal mask every
/// hidden state equals the plain batch's. Log-probs and their gradients stay in the layout of
/// `pairedRows` (`[2B * pairedRows.seqLen]`): the model's `forward(_: SharedPromptRows, ...)` and
/// `backward` are drop-in replacements for the plain ones on the same batch. The last prefix
/// position predicts the first token of both completions: its hidden state is computed once and
/// its log-prob taken twice (one per target), and backward adds both gradients into it.
public struct SharedPromptRows {
    /// The plain batch this packs (its layout is the layout of log-probs in and out).
    public let pairedRows: TokenRows
    public var pairs: Int { segments.count }
    /// Per pair: shared prefix length, chosen and rejected row lengths.
    public let segments: [SharedPromptSegments]
    /// Packed positions per row (the longest packed row).
    public let seqLen: Int
    /// `[pairs * seqLen]` packed input ids (pads hold id 0).
    public let inputIds: [Int32]
    /// `[pairs * seqLen]` rotary position of each packed token (pads 0).
    public let positions: [Int32]
    /// Labelled positions: packed token index, target id, and index in `pairedRows`' layout.
    let labelledIndices: [Int]
    let labelledTargets: [Int32]
    let outputIndices: [Int]

    /// Packs `pairedRows` (2B rows: chosen `0..<B`, rejected `B..<2B`). Returns nil when the batch
    /// cannot be packed exactly: an odd row count, or a target on a padded position (the plain
    /// forward would give it a log-prob that the packed one would not).
    public init?(pairedRows batch: TokenRows) {
        guard batch.rows >= 2, batch.rows % 2 == 0 else { return nil }
        let pairs = batch.rows / 2, T = batch.seqLen
        guard batch.inputIds.count == batch.rows * T, batch.targetIds.count == batch.rows * T,
              batch.lengths.count == batch.rows else { return nil }
        var segments: [SharedPromptSegments] = []
        for i in 0..<pairs {
            let lc = max(0, min(batch.lengths[i], T)), lr = max(0, min(batch.lengths[pairs + i], T))
            for (row, length) in [(i, lc), (pairs + i, lr)] {
                for t in length..<T where batch.targetIds[row * T + t] >= 0 { return nil }
            }
            var prefix = 0
            let chosenBase = i * T, rejectedBase = (pairs + i) * T
            while prefix < min(lc, lr) && batch.inputIds[chosenBase + prefix] == batch.inputIds[rejectedBase + prefix] { prefix += 1 }
            segments.append(SharedPromptSegments(promptLength: prefix, chosenLength: lc, rejectedLength: lr))
        }
        let S = max(1, segments.map(\.packedLength).max() ?? 1)
        var ids = [Int32](repeating: 0, count: pairs * S), positions = [Int32](repeating: 0, count: pairs * S)
        var indices: [Int] = [], targets: [Int32] = [], outputs: [Int] = []
        for (i, seg) in segments.enumerated() {
            let chosenBase = i * T, rejectedBase = (pairs + i) * T
            for t in 0..<seg.chosenLength {
                ids[i * S + t] = batch.inputIds[chosenBase + t]
                positions[i * S + t] = Int32(t)
                if batch.targetIds[chosenBase + t] >= 0 {
                    indices.append(i * S + t); targets.append(batch.targetIds[chosenBase + t]); outputs.append(chosenBase + t)
                }
            }
            for t in 0..<seg.rejectedLength {
                let packed = i * S + seg.packedIndexOfRejected(t)
                if t >= seg.promptLength {
                    ids[packed] = batch.inputIds[rejectedBase + t]
                    positions[packed] = Int32(t)
                }
                if batch.targetIds[rejectedBase + t] >= 0 {
                    indices.append(packed); targets.append(batch.targetIds[rejectedBase + t]); outputs.append(rejectedBase + t)
                }
            }
        }
        self.pairedRows = batch
        self.segments = segments
        self.seqLen = S
        self.inputIds = ids
        self.positions = positions
        self.labelledIndices = indices
        self.labelledTargets = targets
        self.outputIndices = outputs
    }

    /// Valid tokens the packed batch runs, and the plain batch would run.
    public var packedTokens: Int { segments.reduce(0) { $0 + $1.packedLength } }
    public var plainTokens: Int { segments.reduce(0) { $0 + $1.chosenLength + $1.rejectedLength } }
}
