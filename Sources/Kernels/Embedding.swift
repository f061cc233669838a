/// Token embedding lookup: `x[n, :] = table[ids[n], :]`.
///
/// table `[vocab, hidden]`, ids `[tokens]`, x `[tokens, hidden]`.
public enum Embedding {
    // MARK: - Forward

    public static func forward(
        ids: UnsafePointer<Int32>, table: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
        tokens: Int, hidden: Int
    ) {
        Parallel.forChunks(tokens, minimumChunk: 64) { range in
            for n in range {
                (output + n * hidden).update(from: table + Int(ids[n]) * hidden, count: hidden)
            }
        }
    }

    /// The same lookup from a binary16 table (fp16 working weights), widening on the fly.
    public static func forward(
        ids: UnsafePointer<Int32>, table: UnsafePointer<UInt16>, output: UnsafeMutablePointer<Float>,
        tokens: Int, hidden: Int
    ) {
        Parallel.forChunks(tokens, minimumChunk: 64) { range in
            for n in range { Half.toFloat(table + Int(ids[n]) * hidden, output + n * hidden, count: hidden) }
        }
    }

    // MARK: - Backward

    /// Scatter-add: `dTable[ids[n], :] += dOutput[n, :]`. Split over columns, not tokens, so
    /// repeated ids are safe and every column adds its tokens in order whatever the thread count.
    public static func backward(
        ids: UnsafePointer<Int32>, dOutput: UnsafePointer<Float>, dTable: UnsafeMutablePointer<Float>,
        tokens: Int, hidden: Int
    ) {
        Parallel.forChunks(hidden, minimumChunk: 64) { columns in
            for n in 0..<tokens {
                let row = dTable + Int(ids[n]) * hidden
                let g = dOutput + n * hidden
                for j in columns { row[j] += g[j] }
            }
        }
    }
}
