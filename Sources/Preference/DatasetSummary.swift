import Foundation
import Tokenization

// MARK: - A whole file as the trainer sees it

/// Counts, lengths and timings of loading, encoding and batching a whole file (`dpo inspect-data --summary`).
public enum DatasetSummary {
    public static func describe(file url: URL, tokenizer: any Tokenizer, options: EncodingOptions,
                                readOptions: DatasetReadOptions, batchSize: Int) throws -> [String] {
        let start = DispatchTime.now().uptimeNanoseconds
        func seconds(since time: UInt64) -> Double { Double(DispatchTime.now().uptimeNanoseconds - time) / 1e9 }
        let format = try DatasetReader.detectFormat(of: url, keys: readOptions.keys, skipInvalid: readOptions.skipInvalid)
        var lines: [String]
        var rowLengths: [Int]
        var makeRows: ([Int]) -> EncodedRows
        if format.isPreference {
            let data = try PreferenceData.load(from: url, tokenizer: tokenizer, encoding: options, reading: readOptions)
            lines = data.startupLines
            rowLengths = data.pairs.flatMap { [$0.prompt.count + $0.chosen.count, $0.prompt.count + $0.rejected.count] }
            makeRows = data.rows
            let completion = data.pairs.map { Double($0.chosen.count + $0.rejected.count) / 2 }.reduce(0, +) / Double(data.pairs.count)
            let prompt = data.pairs.map { Double($0.prompt.count) }.reduce(0, +) / Double(data.pairs.count)
            lines.append(String(format: "pairs kept: %d; mean prompt %.1f tokens, mean completion %.1f tokens", data.pairs.count, prompt, completion))
        } else {
            let data = try SupervisedData.load(from: url, tokenizer: tokenizer, encoding: options, reading: readOptions)
            lines = data.startupLines
            rowLengths = data.rowLengths
            makeRows = data.rows
            lines.append("sequences kept: \(data.sequences.count)")
        }
        let loadSeconds = seconds(since: start)
        let sorted = rowLengths.sorted()
        lines.append("row lengths: min \(sorted.first ?? 0), median \(sorted[sorted.count / 2]), max \(sorted.last ?? 0)")
        let exampleCount = format.isPreference ? rowLengths.count / 2 : rowLengths.count
        let plan = try BatchPlan(exampleCount: exampleCount, batchSize: batchSize, seed: 0)
        let batchStart = DispatchTime.now().uptimeNanoseconds
        var padded = 0, real = 0
        let batches = plan.batches(epoch: 0)
        for indices in batches {
            let rows = makeRows(indices)
            padded += rows.rows * rows.seqLen
            real += rows.tokenCount
        }
        let batchSeconds = seconds(since: batchStart)
        lines.append(String(format: "read+encode: %.3f s; batching one epoch (%d batches of %d): %.4f s (%.1f us per batch); padding %.1f%%",
                            loadSeconds, batches.count, batchSize, batchSeconds, batchSeconds / Double(batches.count) * 1e6,
                            100 * Double(padded - real) / Double(max(1, padded))))
        return lines
    }
}
