// MARK: - Batches of rows

/// A right-padded batch of token rows in the convention of `LlamaModel.forward` (`TokenRows`):
/// a row t[0..<n] gives input t[0..<n-1] and `targetIds[p] = t[p+1]` where t[p+1] is a completion token,
/// else -1. Training copies the first four fields into `TokenRows`.
public struct EncodedRows: Equatable, Sendable {
    public var rows: Int
    /// Longest row input of the batch (not `maxLength`).
    public var seqLen: Int
    /// [rows * seqLen]; padding positions hold the pad id.
    public var inputIds: [Int32]
    /// [rows * seqLen]; -1 where no log-prob is taken (prompt, padding).
    public var targetIds: [Int32]
    /// [rows]: n - 1 valid positions per row.
    public var lengths: [Int]
    /// [rows]: number of targets >= 0 per row (completion tokens, EOS included), for length-averaged log-probs.
    public var completionTokenCounts: [Int]

    /// Rows of `sequences` in order, padded with `paddingId` to the longest.
    public init(sequences: [EncodedSequence], paddingId: Int32) {
        rows = sequences.count
        lengths = sequences.map { max(0, $0.tokens.count - 1) }
        seqLen = lengths.max() ?? 0
        inputIds = [Int32](repeating: paddingId, count: rows * seqLen)
        targetIds = [Int32](repeating: -1, count: rows * seqLen)
        completionTokenCounts = [Int](repeating: 0, count: rows)
        for (row, sequence) in sequences.enumerated() {
            let base = row * seqLen
            for position in 0..<lengths[row] {
                inputIds[base + position] = sequence.tokens[position]
                if sequence.completionMask[position + 1] {
                    targetIds[base + position] = sequence.tokens[position + 1]
                    completionTokenCounts[row] += 1
                }
            }
        }
    }

    /// The batch of B pairs as 2B rows: chosen rows 0..<B, rejected rows B..<2B.
    public init(pairs: [EncodedPair], paddingId: Int32) {
        self.init(sequences: pairs.map(\.chosenSequence) + pairs.map(\.rejectedSequence), paddingId: paddingId)
    }

    /// Number of real (non-padding) input positions.
    public var tokenCount: Int { lengths.reduce(0, +) }
}
