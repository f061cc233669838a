import Llama
import Preference

/// B encoded pairs as the one concatenated batch of 2B rows the model runs
/// (chosen rows 0..<B, rejected rows B..<2B), with what the loss needs to know about them.
public struct PreferenceBatch {
    /// Dataset indices of the pairs (into the encoded pair array), [B].
    public let pairIndices: [Int]
    public let rows: TokenRows
    /// Completion tokens (targets >= 0) of each row, [2B].
    public let completionTokenCounts: [Int]

    public init(pairs: [EncodedPair], indices: [Int], paddingId: Int32) {
        let encoded = EncodedRows(pairs: indices.map { pairs[$0] }, paddingId: paddingId)
        pairIndices = indices
        rows = TokenRows(
            rows: encoded.rows, seqLen: encoded.seqLen, inputIds: encoded.inputIds, targetIds: encoded.targetIds,
            lengths: encoded.lengths)
        completionTokenCounts = encoded.completionTokenCounts
    }

    public var pairCount: Int { pairIndices.count }
    public var chosenTokenCounts: [Int] { Array(completionTokenCounts[0..<pairCount]) }
    public var rejectedTokenCounts: [Int] { Array(completionTokenCounts[pairCount...]) }
    public var chosenTokenTotal: Int { chosenTokenCounts.reduce(0, +) }
    /// Real (non-padding) input positions of all 2B rows: what tokens/s counts.
    public var inputTokenTotal: Int { rows.lengths.reduce(0, +) }

    // MARK: - Per-token to per-sequence

    /// Sums per-token log-probs `[rows * seqLen]` (0 where there is no target) into one
    /// float32 sum per row; returns (chosen sums [B], rejected sums [B]).
    public func sequenceLogps(_ tokenLogps: [Float]) -> (chosen: [Float], rejected: [Float]) {
        let seqLen = rows.seqLen
        var sums = [Float](repeating: 0, count: rows.rows)
        tokenLogps.withUnsafeBufferPointer { logps in
            rows.targetIds.withUnsafeBufferPointer { targets in
                for row in 0..<rows.rows {
                    var sum: Float = 0
                    for position in (row * seqLen)..<((row + 1) * seqLen) where targets[position] >= 0 {
                        sum += logps[position]
                    }
                    sums[row] = sum
                }
            }
        }
        return (Array(sums[0..<pairCount]), Array(sums[pairCount...]))
    }

    /// d loss / d token log-prob `[rows * seqLen]`: each row's d loss / d sequence sum
    /// broadcast over its completion tokens (0 elsewhere), times `scale`.
    public func tokenGradients(dChosen: [Double], dRejected: [Double], scale: Double) -> [Float] {
        let seqLen = rows.seqLen
        var out = [Float](repeating: 0, count: rows.rows * seqLen)
        rows.targetIds.withUnsafeBufferPointer { targets in
            for row in 0..<rows.rows {
                let value = Float((row < pairCount ? dChosen[row] : dRejected[row - pairCount]) * scale)
                for position in (row * seqLen)..<((row + 1) * seqLen) where targets[position] >= 0 {
                    out[position] = value
                }
            }
        }
        return out
    }

    /// Sums over completion tokens of the vocabulary-mean logit (TRL's `logits/*` numerator),
    /// for chosen and rejected rows, from each position's sum of logits over the vocabulary
    /// (`LlamaModel.logitSums`, `[rows * seqLen]`).
    public func completionLogitSums(_ logitSums: [Float], vocabSize: Int) -> (chosen: Double, rejected: Double) {
        let seqLen = rows.seqLen
        var chosen = 0.0, rejected = 0.0
        for row in 0..<rows.rows {
            for t in 0..<seqLen where rows.targetIds[row * seqLen + t] >= 0 {
                let mean = Double(logitSums[row * seqLen + t]) / Double(vocabSize)
                if row < pairCount { chosen += mean } else { rejected += mean }
            }
        }
        return (chosen, rejected)
    }
}
