import Foundation
import Tokenization

// MARK: - Built-in demo tasks

/// Tasks whose answers a program can check, for the first-run demo: the data to train on and the
/// held-out prompts (disjoint from every training prompt) with the answer checker to score a model.
public enum DemoTask: String, CaseIterable, Sendable {
    /// "a+b=" with 0 <= a, b <= 19; the answer is the decimal sum ("12+7=" -> "19").
    /// Sized for a ~100k-parameter model with the byte tokenizer: prompts of 4-6 tokens, answers of 1-2.
    case arithmetic

    /// Largest operand of `arithmetic`.
    public static let largestOperand = 19

    /// The task of a `--task` name.
    public static func named(_ name: String) throws -> DemoTask {
        guard let task = DemoTask(rawValue: name) else {
            throw DemoTaskError.unknownTask(name: name, known: allCases.map(\.rawValue))
        }
        return task
    }

    // MARK: - Prompts

    /// Every (a, b) of the task, split into training and held-out operands.
    /// About one pair in five is held out, chosen by a fixed hash so the split never changes.
    static func isHeldOut(_ a: Int, _ b: Int) -> Bool { (a * 7 + b * 13 + (a * b) % 5) % 5 == 0 }

    private static func operands(heldOut: Bool) -> [(Int, Int)] {
        var pairs = [(Int, Int)]()
        for a in 0...largestOperand {
            for b in 0...largestOperand where isHeldOut(a, b) == heldOut { pairs.append((a, b)) }
        }
        return pairs
    }

    private static func prompt(_ a: Int, _ b: Int) -> String { "\(a)+\(b)=" }

    /// Draws n operand pairs: whole shuffled passes over the candidates, so prompts repeat only after all were used.
    private static func draw(_ n: Int, from candidates: [(Int, Int)], random: inout SeededRandom) -> [(Int, Int)] {
        var drawn = [(Int, Int)]()
        while drawn.count < n {
            for index in random.permutation(candidates.count) where drawn.count < n { drawn.append(candidates[index]) }
        }
        return drawn
    }

    /// Prompts never used by `preferenceExamples` or `supervisedExamples` (for `dpo score`).
    public func heldOutPrompts(n: Int, seed: Int) -> [String] {
        var random = SeededRandom(seed: UInt64(bitPattern: Int64(seed)) ^ 0x5EED_0F4E_1D00)
        return Self.draw(n, from: Self.operands(heldOut: true), random: &random).map { Self.prompt($0.0, $0.1) }
    }

    /// The number of distinct held-out prompts.
    public var heldOutPromptCount: Int { Self.operands(heldOut: true).count }

    // MARK: - Training data

    /// Preference pairs: chosen is the correct answer, rejected a wrong one (off by 1 to 10, never negative).
    /// `conversational` writes them as one user message and one assistant message each (for ChatML training).
    public func preferenceExamples(n: Int, seed: Int, conversational: Bool = false) -> [PreferenceExample] {
        var random = SeededRandom(seed: UInt64(bitPattern: Int64(seed)))
        return Self.draw(n, from: Self.operands(heldOut: false), random: &random).map { a, b in
            let (prompt, chosen, rejected) = (Self.prompt(a, b), String(a + b), String(Self.wrongAnswer(a + b, &random)))
            guard conversational else { return .standard(prompt: prompt, chosen: chosen, rejected: rejected) }
            return .conversational(prompt: [ChatMessage(role: "user", content: prompt)],
                                   chosen: [ChatMessage(role: "assistant", content: chosen)],
                                   rejected: [ChatMessage(role: "assistant", content: rejected)])
        }
    }

    /// The token ids a model is prompted with for a task prompt, exactly as training rows begin:
    /// the plain prompt (no BOS), or with `conversational` the chat template's rendering of one user
    /// message with the generation prompt.
    public func promptIds(for prompt: String, tokenizer: any Tokenizer, conversational: Bool,
                          chatTemplate: ChatTemplate? = nil) throws -> [Int32] {
        guard conversational else { return tokenizer.encode(prompt) }
        return tokenizer.encode(try tokenizer.renderChat([ChatMessage(role: "user", content: prompt)],
                                                         addGenerationPrompt: true, template: chatTemplate))
    }

    /// Supervised examples; a `wrongShare` fraction (0...1) of them has a wrong answer.
    /// `conversational` writes `{"messages": [user, assistant]}` records.
    public func supervisedExamples(n: Int, seed: Int, wrongShare: Double, conversational: Bool = false) -> [SupervisedExample] {
        var random = SeededRandom(seed: UInt64(bitPattern: Int64(seed)))
        let wrongCount = Int((Double(n) * min(1, max(0, wrongShare))).rounded())
        let wrongPositions = Set(random.permutation(n).prefix(wrongCount))
        return Self.draw(n, from: Self.operands(heldOut: false), random: &random).enumerated().map { position, operands in
            let (a, b) = operands
            let answer = wrongPositions.contains(position) ? Self.wrongAnswer(a + b, &random) : a + b
            guard conversational else { return .promptCompletion(prompt: Self.prompt(a, b), completion: String(answer)) }
            return .messages([ChatMessage(role: "user", content: Self.prompt(a, b)),
                              ChatMessage(role: "assistant", content: String(answer))])
        }
    }

    private static func wrongAnswer(_ correct: Int, _ random: inout SeededRandom) -> Int {
        let offset = Int(random.next() % 10) + 1
        if correct - offset < 0 || random.next() % 2 == 0 { return correct + offset }
        return correct - offset
    }

    // MARK: - Checking answers

    /// Whether `completion` (decoded model output after `prompt`) answers the prompt correctly: it must
    /// start (after whitespace) with the correct number, not followed by another digit.
    public func isCorrect(prompt: String, completion: String) -> Bool {
        switch self {
        case .arithmetic:
            let parts = prompt.dropLast(prompt.hasSuffix("=") ? 1 : 0).split(separator: "+")
            guard parts.count == 2, let a = Int(parts[0].trimmingCharacters(in: .whitespaces)),
                  let b = Int(parts[1].trimmingCharacters(in: .whitespaces)) else { return false }
            let answer = completion.drop { $0 == " " || $0 == "\t" }
            let digits = answer.prefix { $0.isASCII && $0.isNumber }
            guard !digits.isEmpty, let value = Int(digits) else { return false }
            return value == a + b
        }
    }
}

/// Why a demo task cannot be used.
public enum DemoTaskError: Error, CustomStringConvertible, Equatable {
    case unknownTask(name: String, known: [String])

    public var description: String {
        switch self {
        case .unknownTask(let name, let known):
            return "unknown demo task '\(name)' (known: \(known.joined(separator: ", ")))"
        }
    }
}
