import XCTest
import TestSupport
@testable import Llama

final class GenerationTests: XCTestCase {
    func model(precision: Precision = .fp32) throws -> LlamaModel {
        let config = ModelTestSupport.config(tied: false)
        return try ModelTestSupport.model(config, precision: precision, trainable: false,
                                          weights: ModelTestSupport.weights(ParameterLayout(config: config), seed: 41, scale: 0.6))
    }

    /// Greedy decoding with the KV cache picks, at every step, the argmax of the full
    /// (uncached) logits of the sequence so far.
    func testGreedyEqualsArgmaxOfLogitsStepByStep() throws {
        for precision in Precision.allCases {
            let model = try model(precision: precision)
            let prompt: [Int32] = [3, 17, 9]
            var streamed: [Int32] = []
            let generated = model.generate(prompt: prompt, maxNewTokens: 10, sampling: .greedy, stopTokens: [],
                                           onToken: { streamed.append($0); return true })
            XCTAssertEqual(generated.count, 10)
            XCTAssertEqual(streamed, generated)
            var sequence = prompt
            let v = model.config.vocabSize
            for token in generated {
                let n = sequence.count
                let logits = model.logits(TokenRows(rows: 1, seqLen: n, inputIds: sequence,
                                                    targetIds: [Int32](repeating: -1, count: n), lengths: [n]))
                let last = Array(logits[((n - 1) * v)..<(n * v)])
                let argmax = last.indices.max { last[$0] < last[$1] || (last[$0] == last[$1] && $0 > $1) }!
                XCTAssertEqual(Int(token), argmax, "\(precision) step \(n - prompt.count)")
                sequence.append(token)
            }
        }
    }

    /// Sampling is reproducible by seed, and a different seed gives a different continuation.
    func testSamplingIsReproducibleBySeed() throws {
        let model = try model()
        let options = SamplingOptions(temperature: 1.5, topP: 0.95, seed: 7)
        let first = model.generate(prompt: [1, 2], maxNewTokens: 20, sampling: options, stopTokens: [], onToken: nil)
        let second = model.generate(prompt: [1, 2], maxNewTokens: 20, sampling: options, stopTokens: [], onToken: nil)
        XCTAssertEqual(first, second)
        var other = options
        other.seed = 8
        XCTAssertNotEqual(first, model.generate(prompt: [1, 2], maxNewTokens: 20, sampling: other, stopTokens: [], onToken: nil))
        // topP tiny keeps only the most likely token: the same as greedy.
        let nucleus = SamplingOptions(temperature: 1, topP: 1e-6, seed: 3)
        XCTAssertEqual(model.generate(prompt: [1, 2], maxNewTokens: 8, sampling: nucleus, stopTokens: [], onToken: nil),
                       model.generate(prompt: [1, 2], maxNewTokens: 8, sampling: .greedy, stopTokens: [], onToken: nil))
    }

    /// Generation ends at a stop token (returned last), when onToken returns false, and at
    /// max_position_embeddings.
    func testStopTokensCallbackAndPositionLimit() throws {
        let model = try model()
        let free = model.generate(prompt: [4], maxNewTokens: 12, sampling: .greedy, stopTokens: [], onToken: nil)
        let stop = free[4]
        let stopped = model.generate(prompt: [4], maxNewTokens: 12, sampling: .greedy, stopTokens: [stop], onToken: nil)
        XCTAssertEqual(stopped, Array(free[...free.firstIndex(of: stop)!]))
        var seen = 0
        let cut = model.generate(prompt: [4], maxNewTokens: 12, sampling: .greedy, stopTokens: [], onToken: { _ in seen += 1; return seen < 3 })
        XCTAssertEqual(cut, Array(free.prefix(3)))
        let limit = model.config.maxPositionEmbeddings
        XCTAssertEqual(model.generate(prompt: [4, 5], maxNewTokens: 100, sampling: .greedy, stopTokens: [], onToken: nil).count,
                       limit - 2)
    }
}
