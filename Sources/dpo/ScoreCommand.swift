import ArgumentParser
import DPOTools
import Foundation
import Preference
import Training

/// `dpo score`: task accuracy of a model on a demo task's held-out prompts.
struct ScoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "score",
        abstract: "Greedy-decode a demo task's held-out prompts and print {\"task\", \"accuracy\", \"n\", \"correct\", \"distinct\"} as one JSON line.",
        discussion: """
        The held-out prompts never appear in `dpo demo-data` output. With --conversational the prompt is rendered \
        with the model's chat template, as conversational training data is. "n" counts the prompts scored \
        (a repeated prompt counts each time), "distinct" the different ones among them.
        Example: dpo score --model runs/dpo/final --task arithmetic
        """)

    @Option(help: ArgumentHelp("Model directory.", valueName: "dir"))
    var model: String

    @Option(help: ArgumentHelp("Demo task: \(DemoTask.allCases.map(\.rawValue).joined(separator: "|")).", valueName: "task"))
    var task: String = "arithmetic"

    @Option(help: ArgumentHelp("Prompts to score: by default each of the \(DemoTask.arithmetic.heldOutPromptCount) held-out "
        + "prompts once (with --split train, as many training prompts); past the prompts a split holds, they repeat.", valueName: "n"))
    var n: Int = DemoTask.arithmetic.heldOutPromptCount

    @Option(help: "Seed choosing and ordering the held-out prompts.")
    var seed: Int = 0

    @Option(help: ArgumentHelp("Which prompts: held-out (never in training files) or train.", valueName: "held-out|train"))
    var split: String = "held-out"

    @Flag(help: "Prompt through the model's chat template (for models trained on conversational data).")
    var conversational = false

    @Flag(help: "Also print each prompt, the model's answer and whether it is right (before the JSON line).")
    var verbose = false

    func validate() throws {
        guard DemoTask(rawValue: task) != nil else {
            throw ValidationError("--task \(task): expected one of \(DemoTask.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard TaskScoring.Split(rawValue: split) != nil else {
            throw ValidationError("--split \(split): expected held-out or train")
        }
        guard n > 0 else { throw ValidationError("--n must be positive, got \(n)") }
    }

    func run() throws {
        try RankZeroOnly.run(command: "score", score)
    }

    private func score() throws {
        var parameters = TaskScoring.Parameters(task: DemoTask(rawValue: task)!, n: n)
        parameters.seed = seed
        parameters.split = TaskScoring.Split(rawValue: split)!
        parameters.conversational = conversational
        let (loaded, tokenizer) = try TaskScoring.loadModel(model)
        if verbose {
            for answer in try TaskScoring.answer(model: loaded, tokenizer: tokenizer, parameters) {
                print("\(answer.isCorrect ? "ok  " : "bad ") \(answer.prompt) \(answer.completion.debugDescription)")
            }
        }
        let result = try TaskScoring.score(model: loaded, tokenizer: tokenizer, parameters)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        print(String(decoding: try encoder.encode(result), as: UTF8.self))
    }
}
