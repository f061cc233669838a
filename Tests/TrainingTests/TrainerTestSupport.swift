import Distributed
import Foundation
import Llama
import Preference
import Tokenization
import XCTest

@testable import Training

/// Keeps every logged record in memory (tests only; the product sinks write files).
final class MemoryMetricsSink: MetricsSink {
    var records: [(step: Int, metrics: [(name: String, value: Double)])] = []
    func log(step: Int, metrics: [(name: String, value: Double)]) throws { records.append((step, metrics)) }
    func close() throws {}

    /// The series of one metric over the logged steps.
    func series(_ name: String) -> [Double] {
        records.compactMap { record in record.metrics.first { $0.name == name }?.value }
    }
}

/// A scratch directory with a tiny model and preference files.
final class TrainerSandbox {
    let root: URL
    var modelDirectory: URL { root.appendingPathComponent("model") }

    init(config: LlamaConfig = TrainerSandbox.tinyConfig, seed: UInt64 = 1) throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("trainer-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        try makeModel(at: modelDirectory, config: config, seed: seed)
    }

    deinit { try? FileManager.default.removeItem(at: root) }

    /// Even smaller than the `tiny` preset (byte vocabulary, 1 layer) so each test step is ~ms.
    static var tinyConfig: LlamaConfig {
        LlamaConfig(hiddenSize: 32, intermediateSize: 64, numHiddenLayers: 1, numAttentionHeads: 4, numKeyValueHeads: 2,
                    vocabSize: 259, maxPositionEmbeddings: 256, eosTokenId: 258, padTokenId: 256)
    }

    func makeModel(at url: URL, config: LlamaConfig, seed: UInt64) throws {
        let weights = WeightInitializer(seed: seed, standardDeviation: 0.05).weights(for: config)
        try ModelDirectory.save(config: config, weights: weights, to: url)
        try TokenizerFiles.writeByteTokenizer(to: url)
    }

    /// Writes a JSONL file of standard (prompt, chosen, rejected) records.
    @discardableResult
    func writePairs(_ name: String, _ pairs: [(String, String, String)]) throws -> URL {
        let url = root.appendingPathComponent(name)
        var text = ""
        for (prompt, chosen, rejected) in pairs {
            let object = ["prompt": prompt, "chosen": chosen, "rejected": rejected]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            text += String(decoding: data, as: UTF8.self) + "\n"
        }
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    /// Four short arithmetic pairs: the chosen answer is right, the rejected one wrong.
    static let arithmetic: [(String, String, String)] = [
        ("2+2=", "4", "5"), ("3+4=", "7", "9"), ("1+5=", "6", "3"), ("4+4=", "8", "2"),
    ]

    /// Parameters for a short run on `data` with output in `out`.
    func parameters(data: URL, out: String = "out") -> TrainingParameters {
        var p = TrainingParameters()
        p.modelDirectory = modelDirectory.path
        p.dataFile = data.path
        p.outputDirectory = root.appendingPathComponent(out).path
        p.logEvery = 1
        p.seed = 3
        return p
    }

    /// Runs a trainer; returns the summary and the records logged.
    func train(_ p: TrainingParameters, configure: ((TrainerConfiguration) -> Void)? = nil) throws -> (TrainingSummary, MemoryMetricsSink) {
        let sink = MemoryMetricsSink()
        let configuration = TrainerConfiguration()
        configuration.makeMetricsSink = { _, _ in sink }
        configure?(configuration)
        let trainer = DPOTrainer(
            parameters: p, communicator: SingleProcessCommunicator(), makeMetricsSink: configuration.makeMetricsSink,
            testHooks: TrainingTestHooks(faults: FaultInjection(faults: []), gradients: configuration.gradientHook))
        return (try trainer.run(onEvent: configuration.handle), sink)
    }

    /// The fp32 master weights a checkpoint holds.
    static func masterWeights(_ directory: URL) throws -> [Float] {
        try SafetensorsFile(contentsOf: directory.appendingPathComponent(TrainingCheckpoint.optimizerFileName)).floats("master_weights")
    }
}

/// What a test sets on a run: messages and progress to watch, a stop condition, a gradient hook,
/// a metrics sink; turned into `DPOTrainer`'s one event callback and its test hooks.
final class TrainerConfiguration {
    var onMessage: ((String) -> Void)?
    var onProgress: ((ProgressSnapshot) -> Void)?
    /// Asked after every event (the last of a step is its progress); true asks for a stop.
    var shouldStop: () -> Bool = { false }
    /// (0-based step, averaged gradients) after the reduction, before unscaling.
    var gradientHook: ((Int, UnsafeMutableBufferPointer<Float>) -> Void)?
    var makeMetricsSink: (URL, Int?) throws -> MetricsSink = { try FanOutMetricsSink.standard(outputDirectory: $0, resumingFromStep: $1) }

    func handle(_ event: TrainingEvent) -> TrainingDisposition {
        switch event {
        case .message(let text): onMessage?(text)
        case .progress(let snapshot): onProgress?(snapshot)
        case .startup: break
        }
        return shouldStop() ? .stop : .more
    }
}
