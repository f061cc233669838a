import Foundation
import Kernels
import Llama
import Preference
import Tokenization

/// Task accuracy of a model: greedy decoding on a demo task's held-out prompts, each answer
/// checked by the task (`dpo score`, the demo, the experiments).
public enum TaskScoring {

    /// The result `dpo score` prints as JSON: `{"task", "accuracy", "n"}` plus the count correct and
    /// how many different prompts the `n` held (fewer than `n` once the split's prompts repeat).
    public struct Result: Codable, Equatable, Sendable {
        public var task: String
        public var accuracy: Double
        /// Prompts scored, a repeated one counted each time.
        public var n: Int
        public var correct: Int
        public var distinct: Int
    }

    public struct Parameters: Sendable {
        public var task: DemoTask
        /// Held-out prompts to score; at most `task.heldOutPromptCount` are distinct (more repeat them).
        public var n: Int
        /// Which held-out prompts (and in what order) when `n` is below their count.
        public var seed: Int = 0
        /// Prompt through the chat template (as conversational training data is encoded).
        public var conversational = false
        /// New tokens per answer; the task's answers are short.
        public var maxNewTokens = 8
        /// Held-out prompts (never trained on) or the training prompts.
        public var split: Split = .heldOut

        public init(task: DemoTask, n: Int) {
            self.task = task
            self.n = n
        }
    }

    /// Which prompts of the task are scored.
    public enum Split: String, CaseIterable, Codable, Sendable {
        /// Prompts no training file of the task holds (`DemoTask.heldOutPrompts`).
        case heldOut = "held-out"
        /// The prompts training files are drawn from.
        case train
    }

    /// The prompts of `split`, `n` of them (whole shuffled passes: distinct while `n` <= their count).
    public static func prompts(_ p: Parameters) -> [String] {
        switch p.split {
        case .heldOut:
            return p.task.heldOutPrompts(n: p.n, seed: p.seed)
        case .train:
            let trainPrompts = trainingPrompts(p.task)
            var random = SeededRandom(seed: UInt64(bitPattern: Int64(p.seed)) ^ 0x7241_1E55)
            var drawn: [String] = []
            while drawn.count < p.n {
                for index in random.permutation(trainPrompts.count) where drawn.count < p.n { drawn.append(trainPrompts[index]) }
            }
            return drawn
        }
    }

    /// Every prompt of the task that is not held out, in a fixed order.
    public static func trainingPrompts(_ task: DemoTask) -> [String] {
        switch task {
        case .arithmetic:
            let heldOut = Set(task.heldOutPrompts(n: task.heldOutPromptCount, seed: 0))
            var prompts: [String] = []
            for a in 0...DemoTask.largestOperand {
                for b in 0...DemoTask.largestOperand where !heldOut.contains("\(a)+\(b)=") { prompts.append("\(a)+\(b)=") }
            }
            return prompts
        }
    }

    /// One scored prompt.
    public struct Answer: Sendable {
        public var prompt: String
        public var completion: String
        public var isCorrect: Bool
    }

    // MARK: - Scoring

    /// Scores a loaded model with its tokenizer.
    public static func score(model: LlamaModel, tokenizer: any Tokenizer, _ p: Parameters) throws -> Result {
        let answers = try answer(model: model, tokenizer: tokenizer, p)
        let correct = answers.filter(\.isCorrect).count
        return Result(task: p.task.rawValue, accuracy: answers.isEmpty ? 0 : Double(correct) / Double(answers.count),
                      n: answers.count, correct: correct, distinct: Set(answers.map(\.prompt)).count)
    }

    /// Each held-out prompt with the model's greedy completion and whether it is right.
    public static func answer(model: LlamaModel, tokenizer: any Tokenizer, _ p: Parameters) throws -> [Answer] {
        guard p.n > 0 else { throw TaskScoringError.invalidOption("--n must be positive, got \(p.n)") }
        guard p.maxNewTokens > 0 else { throw TaskScoringError.invalidOption("--max-new-tokens must be positive") }
        var stopTokens = Set(model.config.eosTokenIds.map(Int32.init))
        if let eos = tokenizer.eosTokenId { stopTokens.insert(eos) }
        var answers: [Answer] = []
        for prompt in prompts(p) {
            let ids = try p.task.promptIds(for: prompt, tokenizer: tokenizer, conversational: p.conversational)
            if let bad = ids.first(where: { Int($0) >= model.config.vocabSize }) {
                throw TaskScoringError.model("the tokenizer gives id \(bad) but the model's vocab_size is \(model.config.vocabSize): "
                    + "the tokenizer files do not belong to this model")
            }
            var nonFinite: Int?
            let generated = model.generate(prompt: ids, maxNewTokens: p.maxNewTokens, sampling: .greedy,
                                           stopTokens: stopTokens, onToken: nil, onNonFiniteLogits: { nonFinite = $0 })
            if let position = nonFinite {
                throw TaskScoringError.model("the logits for prompt \(prompt.debugDescription) are not finite at position \(position) "
                    + "(NaN or infinity): the weights overflow; score an earlier checkpoint")
            }
            let completion = tokenizer.decode(generated, skipSpecialTokens: true)
            answers.append(Answer(prompt: prompt, completion: completion,
                                  isCorrect: p.task.isCorrect(prompt: prompt, completion: completion)))
        }
        return answers
    }

    /// Loads a model directory (config, weights, tokenizer) and scores it.
    public static func score(modelDirectory: String, _ p: Parameters, precision: Precision = .fp32) throws -> Result {
        let (model, tokenizer) = try loadModel(modelDirectory, precision: precision)
        return try score(model: model, tokenizer: tokenizer, p)
    }

    /// A frozen model and its tokenizer from a model directory, with errors naming `--model`.
    public static func loadModel(_ directory: String, precision: Precision = .fp32) throws -> (LlamaModel, any Tokenizer) {
        let url = URL(fileURLWithPath: directory)
        if let problem = FileProblem.directory(url.path) { throw TaskScoringError.model("--model \(directory): \(problem)") }
        BLAS.ensureBestCore()
        let config: LlamaConfig, weights: [Float]
        do { (config, weights) = try ModelDirectory.load(url) } catch {
            throw TaskScoringError.model("--model \(directory): \(error)")
        }
        let tokenizer: any Tokenizer
        do { tokenizer = try Tokenization.loadTokenizer(from: url) } catch {
            throw TaskScoringError.model("--model \(directory): cannot load its tokenizer: \(error)")
        }
        let model: LlamaModel
        do { model = try LlamaModel(config: config, precision: precision, trainable: false) } catch {
            throw TaskScoringError.model("--model \(directory): \(error)")
        }
        weights.withUnsafeBufferPointer { model.loadWeights($0) }
        return (model, tokenizer)
    }
}

/// Why a model could not be scored or generated from.
public enum TaskScoringError: Error, CustomStringConvertible, LocalizedError, Equatable {
    case invalidOption(String)
    case model(String)

    public var description: String {
        switch self {
        case .invalidOption(let m): return "invalid option: \(m)"
        case .model(let m): return "model: \(m)"
        }
    }

    public var errorDescription: String? { description }
}
