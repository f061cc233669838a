import ArgumentParser
import Foundation
import Tokenization

/// `dpo tokenize`: text lines on stdin -> one JSON array of ids per line (or the reverse with `--decode`).
struct TokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize",
        abstract: "Encode stdin lines to JSON id arrays (or decode them with --decode).")

    @Option(help: "A tokenizer.json file, a directory holding one, or 'byte' for the built-in byte tokenizer.")
    var tokenizer: String?

    @Option(help: "A model directory (its tokenizer.json is used).")
    var model: String?

    @Flag(help: "Read JSON id arrays and write the decoded text, one line each.")
    var decode = false

    @Flag(help: "Run the post-processor (adds BOS where tokenizer.json says so).")
    var addSpecialTokens = false

    @Flag(help: "Encode special tokens written in the text as plain text.")
    var noParseSpecialTokens = false

    @Flag(help: "With --decode: leave special tokens out.")
    var skipSpecialTokens = false

    @Option(help: "Write the tokenizer's files (tokenizer.json, tokenizer_config.json, special_tokens_map.json) into this directory and exit.")
    var save: String?

    @Option(help: "Measure single-thread encoding throughput on the stdin text, repeated this many times; prints JSON.")
    var benchmark: Int?

    func run() throws {
        guard (tokenizer == nil) != (model == nil) else {
            throw ValidationError("give exactly one of --tokenizer FILE|DIR|byte and --model DIR")
        }
        let source = tokenizer ?? model!
        if let save {
            let destination = URL(fileURLWithPath: save)
            if source == "byte" {
                try TokenizerFiles.writeByteTokenizer(to: destination)
            } else {
                var isDirectory: ObjCBool = false
                _ = FileManager.default.fileExists(atPath: source, isDirectory: &isDirectory)
                let directory = isDirectory.boolValue ? URL(fileURLWithPath: source) : URL(fileURLWithPath: source).deletingLastPathComponent()
                try TokenizerFiles.copy(from: directory, to: destination)
            }
            return
        }
        let loaded = try loadTokenizer(from: URL(fileURLWithPath: source))
        if let repetitions = benchmark {
            var lines = [String]()
            while let line = readLine(strippingNewline: true) { lines.append(line) }
            let result = TokenizerBenchmark.measure(loaded, lines: lines, repetitions: repetitions)
            print(String(format: "{\"bytes\": %d, \"tokens\": %d, \"seconds\": %.4f, \"megabytes_per_second\": %.3f, \"tokens_per_second\": %.0f}",
                         result.bytes, result.tokens, result.seconds, result.megabytesPerSecond, result.tokensPerSecond))
            return
        }
        var lineNumber = 0
        while let line = readLine(strippingNewline: true) {
            lineNumber += 1
            if decode {
                guard let data = line.data(using: .utf8),
                      let ids = try? JSONSerialization.jsonObject(with: data) as? [Int] else {
                    throw ValidationError("stdin line \(lineNumber): expected a JSON array of token ids")
                }
                print(loaded.decode(ids.map { Int32(clamping: $0) }, skipSpecialTokens: skipSpecialTokens))
            } else {
                let ids = loaded.encode(line, addSpecialTokens: addSpecialTokens, parseSpecialTokens: !noParseSpecialTokens)
                print("[" + ids.map(String.init).joined(separator: ", ") + "]")
            }
        }
    }
}
