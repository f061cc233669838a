import Foundation
import Training

/// The result of an experiment: a table (printed, and written as Markdown and JSON) and the
/// plot files next to it.
public struct ExperimentTable: Codable, Sendable {
    public var experiment: String
    /// What the experiment shows, one or two sentences (the table's caption).
    public var caption: String
    public var columns: [String]
    /// One row per run; numbers as numbers (NaN written as null in JSON).
    public var rows: [[Double?]]
    /// Row names (the first column).
    public var rowNames: [String]
    /// How many decimals each column prints with.
    public var decimals: [Int]

    public init(experiment: String, caption: String, columns: [String], decimals: [Int]) {
        self.experiment = experiment
        self.caption = caption
        self.columns = columns
        self.decimals = decimals
        self.rows = []
        self.rowNames = []
    }

    public mutating func append(_ name: String, _ values: [Double?]) {
        precondition(values.count == columns.count, "a row of \(values.count) values for \(columns.count) columns")
        rowNames.append(name)
        rows.append(values)
    }

    private func cell(_ value: Double?, column: Int) -> String {
        guard let value, value.isFinite else { return "-" }
        return String(format: "%.\(decimals[column])f", value)
    }

    // MARK: - Text

    /// Fixed-width lines for the terminal.
    public var lines: [String] {
        let header = ["run"] + columns
        let body = zip(rowNames, rows).map { name, values in [name] + values.enumerated().map { cell($1, column: $0) } }
        let widths = header.indices.map { c in ([header[c]] + body.map { $0[c] }).map(\.count).max() ?? 0 }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { c, text in
                c == 0 ? text.padding(toLength: widths[c], withPad: " ", startingAt: 0)
                    : String(repeating: " ", count: widths[c] - text.count) + text
            }.joined(separator: "  ")
        }
        return [caption, line(header)] + body.map(line)
    }

    public var markdown: String {
        var text = "# dpo experiment \(experiment)\n\n\(caption)\n\n| run | " + columns.joined(separator: " | ") + " |\n"
        text += "|---|" + columns.map { _ in "---:" }.joined(separator: "|") + "|\n"
        for (name, values) in zip(rowNames, rows) {
            text += "| \(name) | " + values.enumerated().map { cell($1, column: $0) }.joined(separator: " | ") + " |\n"
        }
        return text
    }

    /// Writes `<experiment>.md` and `<experiment>.json` into `directory`.
    public func write(into directory: URL) throws {
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
            try encoder.encode(self).write(to: directory.appendingPathComponent("\(experiment).json"), options: .atomic)
            try Data(markdown.utf8).write(to: directory.appendingPathComponent("\(experiment).md"), options: .atomic)
        } catch {
            throw DemoError.output("cannot write the \(experiment) table into \(directory.path): \(error.localizedDescription)")
        }
    }
}
