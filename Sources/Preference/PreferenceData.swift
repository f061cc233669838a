import Foundation
import Tokenization

// MARK: - A preference file, ready to batch

/// A preference file read, encoded and ready to batch: what the trainer holds for the `dpo` stages.
///
///     let data = try PreferenceData.load(from: url, tokenizer: tokenizer, encoding: options)
///     let plan = try BatchPlan(exampleCount: data.pairs.count, batchSize: pairsPerRank, worldSize: W, rank: r,
///                              seed: seed, groupByLength: groupByLength ? data.rowLengths : nil)
///     for indices in plan.batches(epoch: epoch) { let rows = data.rows(for: indices) ... }
public struct PreferenceData: Sendable {
    public var file: String
    public var format: DatasetFormat
    /// The template used for conversational examples.
    public var template: ChatTemplate
    public var pairs: [EncodedPair]
    public var report: EncodingReport
    /// Records skipped with `skipInvalid`.
    public var skipped: [DataError]
    public var paddingId: Int32
    /// Lines to print at start: template, skipped records, drops, truncations, the mismatch warning.
    public var startupLines: [String]

    /// Reads and encodes `url`. Throws `DataError` naming the file for bad records (unless skipped), for
    /// a record the chat template cannot split into prompt and completion, and when nothing is left to
    /// train on; `EncodingError` for setup problems.
    public static func load(from url: URL, tokenizer: any Tokenizer, encoding: EncodingOptions = EncodingOptions(),
                            reading: DatasetReadOptions = DatasetReadOptions()) throws -> PreferenceData {
        let dataset = try DatasetReader.readPreferences(from: url, options: reading)
        let encoder = try PreferenceEncoder(tokenizer: tokenizer, options: encoding)
        let (pairs, report) = try namingTheFile(dataset, encoding: encoding, tokenizer: tokenizer) { try encoder.encode(dataset.examples) }
        guard !pairs.isEmpty else { throw nothingLeft(dataset, report) }
        return PreferenceData(
            file: url.path, format: dataset.format, template: encoder.template, pairs: pairs, report: report,
            skipped: dataset.skipped, paddingId: tokenizer.paddingId,
            startupLines: startupLines(file: url.path, format: dataset.format, tokenizer: tokenizer, encoding: encoding,
                                       examples: dataset.examples.count, skipped: dataset.skipped, report: report))
    }

    /// The 2B rows of the pairs at `indices` (chosen rows first), padded to the longest.
    public func rows(for indices: [Int]) -> EncodedRows {
        EncodedRows(pairs: indices.map { pairs[$0] }, paddingId: paddingId)
    }

    /// Longest row length of each pair, for `BatchPlan(groupByLength:)`.
    public var rowLengths: [Int] { pairs.map(\.longestRowLength) }

    /// Runs `encode`, turning a per-example template failure (which names only the example's index)
    /// into a `DataError` naming the file and the record's line or element.
    static func namingTheFile<Example, Result>(_ dataset: Dataset<Example>, encoding: EncodingOptions, tokenizer: any Tokenizer,
                                               _ encode: () throws -> Result) throws -> Result {
        do {
            return try encode()
        } catch let error as EncodingError {
            // A missing template fails the first conversational example: the file's first.
            throw dataset.locating(error, example: error.exampleIndex ?? 0, encoding: encoding, tokenizer: tokenizer)
        }
    }

    /// The error for a file whose every example was skipped or dropped (formerly `BatchPlanError.noExamples`,
    /// which did not say which file).
    static func nothingLeft<Example>(_ dataset: Dataset<Example>, _ report: EncodingReport) -> DataError {
        let reasons = report.summaryLines.filter { $0.hasPrefix("dropped") }
        return DataError(file: dataset.file, location: .file,
                         problem: "no examples to train on: all \(dataset.examples.count) read example(s) were dropped"
                             + (reasons.isEmpty ? "" : " (\(reasons.joined(separator: "; ")))")
                             + "; raise --max-length or lower --max-prompt-length")
    }

    static func startupLines(file: String, format: DatasetFormat, tokenizer: any Tokenizer, encoding: EncodingOptions,
                             examples: Int, skipped: [DataError], report: EncodingReport) -> [String] {
        var lines = ["data: \(file): \(examples) example(s), format \(format.rawValue)"]
        if format != .standard && format != .standardImplicitPrompt && format != .promptCompletion {
            lines.append(encoding.templateSummary(tokenizer: tokenizer))
        }
        if !skipped.isEmpty {
            lines.append("skipped \(skipped.count) invalid record(s); first: \(skipped[0].description)")
        }
        return lines + report.summaryLines
    }
}

// MARK: - A supervised file, ready to batch

/// A supervised (`sft` stage) file read, encoded and ready to batch; rows follow the same convention.
public struct SupervisedData: Sendable {
    public var file: String
    public var format: DatasetFormat
    public var template: ChatTemplate
    public var sequences: [EncodedSequence]
    public var report: EncodingReport
    public var skipped: [DataError]
    public var paddingId: Int32
    public var startupLines: [String]

    public static func load(from url: URL, tokenizer: any Tokenizer, encoding: EncodingOptions = EncodingOptions(),
                            reading: DatasetReadOptions = DatasetReadOptions()) throws -> SupervisedData {
        let dataset = try DatasetReader.readSupervised(from: url, options: reading)
        let encoder = try SupervisedEncoder(tokenizer: tokenizer, options: encoding)
        let (sequences, report) = try PreferenceData.namingTheFile(dataset, encoding: encoding, tokenizer: tokenizer) { try encoder.encode(dataset.examples) }
        guard !sequences.isEmpty else { throw PreferenceData.nothingLeft(dataset, report) }
        return SupervisedData(
            file: url.path, format: dataset.format, template: encoder.template, sequences: sequences, report: report,
            skipped: dataset.skipped, paddingId: tokenizer.paddingId,
            startupLines: PreferenceData.startupLines(file: url.path, format: dataset.format, tokenizer: tokenizer,
                                                      encoding: encoding, examples: dataset.examples.count,
                                                      skipped: dataset.skipped, report: report))
    }

    /// The rows of the sequences at `indices`, padded to the longest.
    public func rows(for indices: [Int]) -> EncodedRows {
        EncodedRows(sequences: indices.map { sequences[$0] }, paddingId: paddingId)
    }

    /// Length of each sequence, for `BatchPlan(groupByLength:)`.
    public var rowLengths: [Int] { sequences.map(\.tokens.count) }
}
