/// A right-padded batch of token rows.
///
/// Token `t` of row `r` lives at index `r * seqLen + t`. Row r's first `lengths[r]`
/// positions are real; attention never looks at a key `t >= lengths[r]`.
public struct TokenRows {
    public var rows: Int, seqLen: Int
    /// `[rows * seqLen]`; pad positions hold any valid id.
    public var inputIds: [Int32]
    /// `[rows * seqLen]`, the next-token target of each position; -1 = no log-prob here.
    public var targetIds: [Int32]
    /// `[rows]`, valid positions per row.
    public var lengths: [Int]

    public init(rows: Int, seqLen: Int, inputIds: [Int32], targetIds: [Int32], lengths: [Int]) {
        self.rows = rows
        self.seqLen = seqLen
        self.inputIds = inputIds
        self.targetIds = targetIds
        self.lengths = lengths
    }

    /// Number of positions with a target (where the LM head is applied).
    public var labelledPositions: Int { targetIds.reduce(0) { $0 + ($1 >= 0 ? 1 : 0) } }
}
