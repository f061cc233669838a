import Foundation
import Preference
import Training

/// The demo's three data files, all from the arithmetic task with fixed seeds:
/// - `sft_pairs.jsonl`: answers of mixed quality for the `sft` loss (a share of them wrong),
///   written as preference records whose chosen is the answer (the `sft` loss reads only chosen);
/// - `dpo_pairs.jsonl`: chosen the correct answer, rejected a wrong one, on training prompts;
/// - `heldout_pairs.jsonl`: the same on held-out prompts (never trained on), for evaluation.
public enum DemoData {
    public static let sftFileName = "sft_pairs.jsonl"
    public static let dpoFileName = "dpo_pairs.jsonl"
    public static let heldOutFileName = "heldout_pairs.jsonl"

    /// Writes the three files into `directory`; returns their URLs (sft, dpo, held-out).
    public static func write(_ p: DemoParameters, into directory: URL) throws -> (sft: URL, dpo: URL, heldOut: URL) {
        let task = DemoTask.arithmetic
        let sft = task.supervisedExamples(n: p.sftExamples, seed: p.seed, wrongShare: p.sftWrongShare).map { example -> PreferenceExample in
            guard case .promptCompletion(let prompt, let completion) = example else {
                preconditionFailure("the arithmetic task writes prompt/completion examples")
            }
            return .standard(prompt: prompt, chosen: completion, rejected: completion)
        }
        let dpo = task.preferenceExamples(n: p.dpoPairs, seed: p.seed + 1)
        let heldOut = heldOutPairs(task: task, n: p.heldOutPairs, seed: p.seed + 2)
        let urls = (sft: directory.appendingPathComponent(sftFileName), dpo: directory.appendingPathComponent(dpoFileName),
                    heldOut: directory.appendingPathComponent(heldOutFileName))
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            try DatasetWriter.jsonLines(sft).write(to: urls.sft, options: .atomic)
            try DatasetWriter.jsonLines(dpo).write(to: urls.dpo, options: .atomic)
            try DatasetWriter.jsonLines(heldOut).write(to: urls.heldOut, options: .atomic)
        } catch {
            throw DemoError.output("cannot write the demo data into \(directory.path): \(error.localizedDescription)")
        }
        return urls
    }

    /// Preference pairs on held-out prompts: chosen correct, rejected off by 1 to 10 (never negative).
    public static func heldOutPairs(task: DemoTask, n: Int, seed: Int) -> [PreferenceExample] {
        var random = SeededRandom(seed: UInt64(bitPattern: Int64(seed)) ^ 0x4E1D_0A7B)
        return task.heldOutPrompts(n: n, seed: seed).map { prompt in
            let correct = answer(prompt)
            let offset = Int(random.next() % 10) + 1
            let wrong = correct - offset < 0 || random.next() % 2 == 0 ? correct + offset : correct - offset
            return .standard(prompt: prompt, chosen: String(correct), rejected: String(wrong))
        }
    }

    /// The sum of an "a+b=" prompt.
    static func answer(_ prompt: String) -> Int {
        prompt.dropLast().split(separator: "+").compactMap { Int($0) }.reduce(0, +)
    }
}
