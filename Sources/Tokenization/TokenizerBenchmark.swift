import Foundation

// MARK: - Encoding throughput

/// Measures single-thread encoding throughput (for `dpo tokenize --benchmark`).
public enum TokenizerBenchmark {
    public struct Result: Sendable {
        public var bytes: Int
        public var tokens: Int
        public var seconds: Double
        public var megabytesPerSecond: Double { Double(bytes) / seconds / 1e6 }
        public var tokensPerSecond: Double { Double(tokens) / seconds }
    }

    /// Encodes every line `repetitions` times (after one warm-up pass, which fills the BPE cache as
    /// Hugging Face's own cache would be filled) and returns the totals of the timed passes.
    public static func measure(_ tokenizer: any Tokenizer, lines: [String], repetitions: Int) -> Result {
        for line in lines { _ = tokenizer.encode(line) }
        var tokens = 0
        let start = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<max(1, repetitions) {
            for line in lines { tokens += tokenizer.encode(line).count }
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let bytes = lines.reduce(0) { $0 + $1.utf8.count } * max(1, repetitions)
        return Result(bytes: bytes, tokens: tokens, seconds: seconds)
    }
}
