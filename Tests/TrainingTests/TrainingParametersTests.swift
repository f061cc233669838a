import Foundation
import Llama
import Preference
import Tokenization
import XCTest

@testable import Training

/// The option table, `--config` files and `train_config.json`.
final class TrainingParametersTests: XCTestCase {

    /// Every option of issue 3's CLI is in the table, documented, with a default.
    func testEveryOptionHasHelpAndADefault() {
        let required = [
            "model", "ref-model", "data", "eval-data", "out", "resume", "loss", "beta", "label-smoothing", "rpo-alpha",
            "reference-free", "average-logps", "lr", "optimizer", "weight-decay", "warmup-steps", "schedule", "batch-pairs",
            "grad-accum", "epochs", "max-steps", "max-length", "max-prompt-length", "max-grad-norm", "adam-beta1", "adam-beta2",
            "adam-eps", "warmup-ratio", "precision", "save-dtype", "seed", "precompute-ref", "log-every", "eval-every",
            "save-every", "keep-checkpoints", "max-skipped-steps", "chat-template", "prompt-key", "chosen-key",
            "rejected-key", "group-by-length", "truncation", "skip-invalid",
        ]
        let names = TrainingParameters.options.map(\.name)
        XCTAssertEqual(Set(names).count, names.count, "no duplicates")
        for name in required { XCTAssertTrue(names.contains(name), "--\(name) missing") }
        for option in TrainingParameters.options {
            XCTAssertFalse(option.help.isEmpty, option.name)
            XCTAssertFalse(option.defaultValue.isEmpty, option.name)
            XCTAssertTrue(TrainingParameters.help(option.name).contains("default:"), option.name)
        }
    }

    /// `--bucket-mb` defaults to 4 MiB under `--zero 2` (its window pages and fp16 staging scale
    /// with the bucket), 25 otherwise; a given size (flag or `--config` key) wins; the step the
    /// trainer builds gets the resolved size.
    func testBucketSizeDefaultsToFourUnderZeroTwo() throws {
        for (zero, expected) in [("0", 25.0), ("1", 25.0), ("2", 4.0)] {
            var p = TrainingParameters()
            try p.apply("zero", zero)
            XCTAssertEqual(StepBuilder.stepOptions(p).bucketMegabytes, expected, "--zero \(zero)")
            try p.apply("bucket_mb", "25")
            XCTAssertEqual(StepBuilder.stepOptions(p).bucketMegabytes, 25, "--zero \(zero) --bucket-mb 25")
        }
    }

    /// The documented defaults are the struct's defaults.
    func testDocumentedDefaultsMatchTheStruct() throws {
        var documented = TrainingParameters()
        for option in TrainingParameters.options where !["required", "none"].contains(option.defaultValue)
            && !option.defaultValue.hasPrefix("the ") {
            try documented.apply(option.name, option.defaultValue)
        }
        XCTAssertEqual(documented, TrainingParameters())
    }

    /// The data-shape options reach the reader and the encoder: key names, chat template, auto.
    func testDataOptionsReachReaderAndEncoder() throws {
        var p = TrainingParameters()
        try p.apply("prompt-key", "question")
        try p.apply("chosen-key", "good")
        try p.apply("rejected-key", "bad")
        try p.apply("chat-template", "llama3")
        XCTAssertEqual(p.readOptions.keys.prompt, "question")
        XCTAssertEqual(p.readOptions.keys.chosen, "good")
        XCTAssertEqual(p.readOptions.keys.rejected, "bad")
        XCTAssertEqual(p.encodingOptions.chatTemplate, .llama3)
        try p.apply("chat-template", "auto")
        XCTAssertNil(p.encodingOptions.chatTemplate)
        XCTAssertThrowsError(try p.apply("chat-template", "vicuna")) { error in
            XCTAssertTrue("\(error)".contains("chat-template"), "\(error)")
        }

        // A file with other key names loads through the trainer's loader with these options.
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("keys-\(UUID().uuidString).jsonl")
        defer { try? FileManager.default.removeItem(at: file) }
        try Data(#"{"question": "1+1=", "good": "2", "bad": "3"}"#.utf8).write(to: file)
        let loaded = try TrainingInputs.loadPairs(
            file.path, flag: "--data", tokenizer: TokenizerFiles.byteTokenizer(), encoding: p.encodingOptions,
            reading: p.readOptions)
        XCTAssertEqual(loaded.pairs.count, 1)
        XCTAssertEqual(loaded.pairs[0].prompt, Array("1+1=".utf8).map(Int32.init))
        XCTAssertEqual(loaded.pairs[0].chosen, Array("2".utf8).map(Int32.init) + [258])
    }

    func testApplyParsesEachKindOfValueAndNamesBadOnes() throws {
        var p = TrainingParameters()
        try p.apply("--loss", "ipo")
        try p.apply("beta", "0.25")
        try p.apply("batch_pairs", "8")
        try p.apply("reference-free", "true")
        try p.apply("precision", "fp16")
        try p.apply("save-dtype", "bf16")
        try p.apply("schedule", "cosine")
        XCTAssertEqual(p.loss.kind, .ipo)
        XCTAssertEqual(p.loss.beta, 0.25)
        XCTAssertEqual(p.batchPairs, 8)
        XCTAssertTrue(p.loss.referenceFree)
        XCTAssertEqual(p.precision, .fp16)
        XCTAssertEqual(p.saveDType, .bf16)
        XCTAssertEqual(p.schedule, .cosine)
        for (name, value, expected) in [("loss", "dpo", "one of"), ("beta", "abc", "number"), ("epochs", "1.5", "integer"),
                                        ("shuffle", "maybe", "true or false"), ("colour", "red", "unknown option")] {
            XCTAssertThrowsError(try p.apply(name, value)) { XCTAssertTrue("\($0)".contains(expected), "\(name): \($0)") }
        }
    }

    func testValidationNamesTheFlag() {
        var p = TrainingParameters()
        p.modelDirectory = "m"; p.dataFile = "d"; p.outputDirectory = "o"
        XCTAssertNoThrow(try p.validate())
        for (change, flag) in [({ (q: inout TrainingParameters) in q.batchPairs = 0 }, "--batch-pairs"),
                               ({ $0.gradAccum = 0 }, "--grad-accum"), ({ $0.loss.beta = 0 }, "--beta"),
                               ({ $0.warmupRatio = 1 }, "--warmup-ratio"), ({ $0.learningRate = -1 }, "--lr"),
                               ({ $0.maxLength = 1 }, "--max-length"), ({ $0.modelDirectory = "" }, "--model"),
                               ({ $0.zero = 3 }, "--zero")] {
            var q = p
            change(&q)
            XCTAssertThrowsError(try q.validate()) { XCTAssertTrue("\($0)".contains(flag), "\($0)") }
        }
    }

    /// YAML and JSON config files use the flag names; flags given afterwards override them.
    func testConfigFilesInYAMLAndJSON() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("config-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let yaml = directory.appendingPathComponent("run.yaml")
        try "# a DPO run\nloss: robust\nbeta: 0.3\nlabel-smoothing: 0.1\nbatch_pairs: 4\nreference-free: false\neval-data: ~\n"
            .write(to: yaml, atomically: true, encoding: .utf8)
        var p = TrainingParameters()
        try TrainingConfigFile.apply(yaml, to: &p)
        try p.apply("beta", "0.5")  // a flag given on the command line
        XCTAssertEqual(p.loss.kind, .robust)
        XCTAssertEqual(p.loss.beta, 0.5)
        XCTAssertEqual(p.loss.labelSmoothing, 0.1)
        XCTAssertEqual(p.batchPairs, 4)
        XCTAssertNil(p.evalDataFile)

        let json = directory.appendingPathComponent("run.json")
        try #"{"lr": 5e-7, "max-steps": 100, "precompute-ref": true}"#.write(to: json, atomically: true, encoding: .utf8)
        var q = TrainingParameters()
        try TrainingConfigFile.apply(json, to: &q)
        XCTAssertEqual(q.learningRate, 5e-7)
        XCTAssertEqual(q.maxSteps, 100)
        XCTAssertTrue(q.precomputeReference)

        let bad = directory.appendingPathComponent("bad.yaml")
        try "lr: [1, 2]\n".write(to: bad, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try TrainingConfigFile.apply(bad, to: &q)) { XCTAssertTrue("\($0)".contains("bad.yaml"), "\($0)") }
        let unknown = directory.appendingPathComponent("unknown.yaml")
        try "learning_rate: 1e-6\n".write(to: unknown, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try TrainingConfigFile.apply(unknown, to: &q)) {
            XCTAssertTrue("\($0)".contains("unknown.yaml") && "\($0)".contains("learning_rate"), "\($0)")
        }
    }

    /// train_config.json round-trips.
    func testResolvedConfigRoundTrips() throws {
        var p = TrainingParameters()
        p.modelDirectory = "m"
        p.loss = PreferenceLossOptions(kind: .exoPair, beta: 0.2, labelSmoothing: 1e-3)
        p.referenceModelDirectory = "ref"
        let data = try TrainingCheckpoint.encodedParameters(p)
        XCTAssertEqual(try JSONDecoder().decode(TrainingParameters.self, from: data), p)
        XCTAssertTrue(String(decoding: data, as: UTF8.self).contains("\"ref_model\""))
    }
}
