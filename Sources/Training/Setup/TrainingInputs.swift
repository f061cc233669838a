import Foundation
import Llama
import Preference
import Tokenization

/// Loading what `dpo train`, `dpo eval` and `dpo logps` read, with errors that name the
/// flag, the file and the cause. Nothing here writes anything.
public enum TrainingInputs {

    /// A model directory's config and flat fp32 weights.
    public static func loadModel(_ directory: String, flag: String) throws -> (config: LlamaConfig, weights: [Float]) {
        let url = URL(fileURLWithPath: directory)
        if let problem = FileProblem.directory(url.path) { throw TrainingError.model("\(flag) \(directory): \(problem)") }
        do { return try ModelDirectory.load(url) } catch {
            throw TrainingError.model("\(flag) \(directory): \(error)")
        }
    }

    /// Refuses a reference whose architecture differs from the policy's (the layouts must match
    /// and the same tokens must mean the same thing).
    public static func checkSameArchitecture(policy: LlamaConfig, reference: LlamaConfig, referenceDirectory: String) throws {
        var differences: [String] = []
        func compare<T: Equatable>(_ name: String, _ a: T, _ b: T) { if a != b { differences.append("\(name) \(b) vs \(a)") } }
        compare("hidden_size", policy.hiddenSize, reference.hiddenSize)
        compare("intermediate_size", policy.intermediateSize, reference.intermediateSize)
        compare("num_hidden_layers", policy.numHiddenLayers, reference.numHiddenLayers)
        compare("num_attention_heads", policy.numAttentionHeads, reference.numAttentionHeads)
        compare("num_key_value_heads", policy.numKeyValueHeads, reference.numKeyValueHeads)
        compare("head_dim", policy.headDim, reference.headDim)
        compare("vocab_size", policy.vocabSize, reference.vocabSize)
        compare("tie_word_embeddings", policy.tieWordEmbeddings, reference.tieWordEmbeddings)
        compare("rms_norm_eps", policy.rmsNormEps, reference.rmsNormEps)
        compare("rope_theta", policy.ropeTheta, reference.ropeTheta)
        if !differences.isEmpty {
            throw TrainingError.model(
                "--ref-model \(referenceDirectory) has another architecture than --model (reference vs policy: "
                    + differences.joined(separator: ", ") + "); the reference must be the same model family and size")
        }
    }

    /// The tokenizer of a model directory.
    public static func loadTokenizer(_ directory: String, flag: String) throws -> any Tokenizer {
        do { return try Tokenization.loadTokenizer(from: URL(fileURLWithPath: directory)) } catch {
            throw TrainingError.model("\(flag) \(directory): cannot load its tokenizer: \(error)")
        }
    }

    /// Encoded pairs of a preference file plus a one-line account of what was dropped/skipped.
    /// - Parameter allowEmpty: `dpo logps` scores whatever is left; training refuses an empty set.
    public static func loadPairs(
        _ file: String, flag: String, tokenizer: any Tokenizer, encoding: EncodingOptions,
        reading: DatasetReadOptions = DatasetReadOptions(), allowEmpty: Bool = false
    ) throws -> (pairs: [EncodedPair], outcomes: [EncodingOutcome], summary: String, skipped: Int) {
        let dataset: Dataset<PreferenceExample>
        do {
            dataset = try DatasetReader.readPreferences(
                from: URL(fileURLWithPath: file), options: reading)
        } catch {
            throw TrainingError.data("\(flag) \(file): \(error)")
        }
        let encoder: PreferenceEncoder
        do { encoder = try PreferenceEncoder(tokenizer: tokenizer, options: encoding) } catch {
            throw TrainingError.data("\(flag) \(file): cannot encode: \(error)")
        }
        var pairs: [EncodedPair] = []
        var outcomes: [EncodingOutcome] = []
        var dropped = 0
        var report = EncodingReport()  // counts prompt/completion boundary mismatches, warned once below
        for (index, example) in dataset.examples.enumerated() {
            let outcome: EncodingOutcome, mismatch: Bool
            do { (outcome, mismatch) = try encoder.encode(example, index: index) } catch {
                throw TrainingError.data("\(flag) \(file): \(dataset.locating(error, example: index, encoding: encoding, tokenizer: tokenizer))")
            }
            if mismatch {
                report.promptMismatchCount += 1
                if report.firstPromptMismatchIndex == nil { report.firstPromptMismatchIndex = index }
            }
            outcomes.append(outcome)
            switch outcome {
            case .encoded(let pair): pairs.append(pair)
            case .dropped: dropped += 1
            }
        }
        var summary = "\(flag) \(file): \(dataset.examples.count) pairs read, \(pairs.count) kept, \(dropped) dropped by truncation"
            + (dataset.skipped.isEmpty ? "" : ", \(dataset.skipped.count) invalid records skipped")
        // The template used (source, first line) and the boundary warning, for conversational data.
        if dataset.format.isConversational { summary += "\n" + encoder.template.summary }
        for line in report.summaryLines { summary += "\n" + line }
        if !allowEmpty {
            if dataset.examples.isEmpty {
                throw TrainingError.data("\(flag) \(file) has no preference pairs" + (dataset.skipped.isEmpty ? "" : " (\(dataset.skipped.count) invalid records skipped)"))
            }
            if pairs.isEmpty {
                throw TrainingError.data(
                    "\(flag) \(file): all \(dataset.examples.count) pairs were dropped by truncation "
                        + "(--max-length \(encoding.maxLength), --max-prompt-length \(encoding.maxPromptLength)); raise --max-length or lower --max-prompt-length")
            }
        }
        return (pairs, outcomes, summary, dataset.skipped.count)
    }
}
