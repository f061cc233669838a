import ArgumentParser
import DPOTools
import Foundation
import Preference

/// `dpo demo-data`: writes a built-in task's preference file (or its SFT counterpart).
struct DemoDataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo-data",
        abstract: "Write a demo task's preference pairs (chosen correct, rejected wrong) or, with --sft, its supervised data.")

    @Option(help: "The task: arithmetic.") var task = "arithmetic"
    @Option(help: "Number of examples.") var n = 1000
    @Option(help: "Random seed.") var seed = 0
    @Option(help: "Output JSON Lines file.") var out: String
    @Flag(help: "Write {\"prompt\", \"completion\"} lines for the sft stage instead of preference pairs.") var sft = false
    @Option(help: "With --sft: share (0...1) of examples whose completion is wrong.") var wrongShare = 0.0
    @Flag(help: "Write chat messages (user prompt, assistant answer) instead of plain strings.") var conversational = false
    @Flag(help: "Replace an existing --out file.") var force = false

    func run() throws {
        guard n > 0 else { throw ValidationError("--n must be positive") }
        guard (0...1).contains(wrongShare) else { throw ValidationError("--wrong-share must be between 0 and 1") }
        let demoTask = try DemoTask.named(task)
        let data = sft
            ? try DatasetWriter.jsonLines(demoTask.supervisedExamples(n: n, seed: seed, wrongShare: wrongShare, conversational: conversational))
            : try DatasetWriter.jsonLines(demoTask.preferenceExamples(n: n, seed: seed, conversational: conversational))
        let url = URL(fileURLWithPath: out)
        if !force && FileManager.default.fileExists(atPath: url.path) {
            throw DemoDataError(message: "\(url.path) already exists; choose another --out or pass --force")
        }
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try data.write(to: url, options: .atomic)
    }
}

/// A refusal of `dpo demo-data` (printed as one line, without the usage text).
struct DemoDataError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}
