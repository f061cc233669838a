import ArgumentParser
import Foundation
import Tokenization

/// `dpo bench tokenize`: single-thread encoding throughput of a tokenizer (the measurement of
/// `dpo tokenize --benchmark`, in the bench group).
struct BenchTokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize",
        abstract: "Time single-thread encoding of a text file (or stdin); print bytes, tokens, MB/s and tokens/s as one JSON line.")

    @Option(help: "A tokenizer.json file, a directory holding one, or 'byte' for the built-in byte tokenizer.")
    var tokenizer: String?
    @Option(help: "A model directory (its tokenizer.json is used).")
    var model: String?
    @Option(help: "Text to encode, one example per line (default: stdin).")
    var input: String?
    @Option(help: "Times the text is encoded.")
    var repetitions = 3

    func validate() throws {
        guard (tokenizer == nil) != (model == nil) else { throw ValidationError("give exactly one of --tokenizer FILE|DIR|byte and --model DIR") }
        guard repetitions > 0 else { throw ValidationError("--repetitions must be positive") }
    }

    func run() throws {
        let loaded = try loadTokenizer(from: URL(fileURLWithPath: tokenizer ?? model!))
        var lines = [String]()
        if let input {
            guard let text = try? String(contentsOfFile: input, encoding: .utf8) else {
                throw ValidationError("--input \(input): cannot read it as UTF-8 text")
            }
            lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        } else {
            while let line = readLine(strippingNewline: true) { lines.append(line) }
        }
        guard lines.contains(where: { !$0.isEmpty }) else { throw ValidationError("no text to encode (give --input FILE or pipe text on stdin)") }
        let result = TokenizerBenchmark.measure(loaded, lines: lines, repetitions: repetitions)
        print(String(format: "{\"bench\": \"tokenize\", \"bytes\": %d, \"tokens\": %d, \"seconds\": %.4f, \"megabytes_per_second\": %.3f, \"tokens_per_second\": %.0f}",
                     result.bytes, result.tokens, result.seconds, result.megabytesPerSecond, result.tokensPerSecond))
    }
}

/// `dpo bench allreduce`: the distributed helper's all-reduce benchmark (`dpo bench-allreduce`),
/// with the same options, in the bench group. Run it under `launch/local.sh -n 2 --`.
struct BenchAllreduceGroupCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "allreduce",
        abstract: "Time the bucketed gradient all-reduce against a plain MPI_Allreduce, or its overlap with a real backward (--preset); rank 0 prints one JSON line.")

    @OptionGroup var options: AllreduceBenchOptions

    func run() throws { try options.run() }
}
