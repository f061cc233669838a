import ArgumentParser
import Foundation
import Llama

/// `dpo bench model`: forward and forward+backward throughput of a preset model.
struct BenchModelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model",
        abstract: "Time the model's forward and forward+backward; print tokens/s and GFLOP/s as one JSON line.")

    @Option(help: "Model preset: \(LlamaPreset.allCases.map(\.rawValue).joined(separator: "|")).")
    var preset: String = "minimind"
    @Option(help: "Rows (sequences) per batch.")
    var rows: Int = 8
    @Option(help: "Tokens per row.")
    var seq: Int = 256
    @Option(help: "Threads (OpenBLAS and the model's parallel loops).")
    var threads: Int = 1
    @Option(help: "Working precision.")
    var precision: Precision = .fp32
    @Option(help: "Timed repetitions (median reported) after one warm-up.")
    var repetitions: Int = 3

    func validate() throws {
        guard LlamaPreset(rawValue: preset) != nil else {
            throw ValidationError("--preset \(preset): expected one of \(LlamaPreset.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard rows > 0, seq > 0, threads > 0, repetitions > 0 else {
            throw ValidationError("--rows, --seq, --threads and --repetitions must be positive")
        }
    }

    func run() throws {
        let presetValue = LlamaPreset(rawValue: preset)!
        guard seq <= presetValue.config.maxPositionEmbeddings else {
            throw ValidationError("--seq \(seq) is longer than the preset's max_position_embeddings \(presetValue.config.maxPositionEmbeddings)")
        }
        let parameters = ModelBenchmark.Parameters(
            config: presetValue.config, presetName: preset, rows: rows, seqLen: seq, threads: threads,
            precision: precision, repetitions: repetitions)
        let result = try ModelBenchmark(parameters).run()
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        print(String(decoding: try encoder.encode(result), as: UTF8.self))
    }
}
