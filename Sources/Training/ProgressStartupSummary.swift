import Foundation

/// The facts printed once before the first step; the trainer fills them in and the CLI prints
/// `ProgressStartupSummary.format(facts)`.
public struct ProgressStartupSummary: Sendable {
    /// Estimated peak memory of one rank, in bytes, by what holds it.
    public struct MemoryEstimate: Sendable {
        /// Working weights (fp32, or Float16 copy plus fp32 master weights under fp16 - count both).
        public var weightsBytes: Int
        /// Gradients and optimizer state (Adam moments, master weights if not counted above).
        public var optimizerBytes: Int
        /// Activations saved for backward at the largest batch.
        public var activationsBytes: Int
        /// The frozen reference model (0 with `--reference-free` or precomputed reference log-probs).
        public var referenceBytes: Int
        /// What the process held before loading anything (runtime, libraries, BLAS buffers), measured; 0 = not known.
        public var runtimeBytes: Int

        public init(weightsBytes: Int, optimizerBytes: Int, activationsBytes: Int, referenceBytes: Int, runtimeBytes: Int = 0) {
            self.weightsBytes = weightsBytes
            self.optimizerBytes = optimizerBytes
            self.activationsBytes = activationsBytes
            self.referenceBytes = referenceBytes
            self.runtimeBytes = runtimeBytes
        }

        public var totalBytes: Int { weightsBytes + optimizerBytes + activationsBytes + referenceBytes + runtimeBytes }
    }

    /// What the model is, e.g. "runs/sft (LlamaForCausalLM, 4 layers, hidden 256)".
    public var modelDescription: String
    public var parameterCount: Int
    public var worldSize: Int
    public var threadsPerRank: Int
    public var pairsPerRank: Int
    public var gradientAccumulation: Int
    /// "fp32" or "fp16".
    public var precision: String
    /// e.g. "sigmoid, beta 0.1".
    public var lossDescription: String
    public var trainPairs: Int
    public var evalPairs: Int
    /// Pairs left out while reading/encoding, by reason (e.g. "prompt longer than --max-length": 3).
    public var droppedPairs: [(reason: String, count: Int)]
    public var totalSteps: Int
    public var epochs: Double
    public var memory: MemoryEstimate

    public init(modelDescription: String, parameterCount: Int, worldSize: Int, threadsPerRank: Int,
                pairsPerRank: Int, gradientAccumulation: Int, precision: String, lossDescription: String,
                trainPairs: Int, evalPairs: Int, droppedPairs: [(reason: String, count: Int)],
                totalSteps: Int, epochs: Double, memory: MemoryEstimate) {
        self.modelDescription = modelDescription
        self.parameterCount = parameterCount
        self.worldSize = worldSize
        self.threadsPerRank = threadsPerRank
        self.pairsPerRank = pairsPerRank
        self.gradientAccumulation = gradientAccumulation
        self.precision = precision
        self.lossDescription = lossDescription
        self.trainPairs = trainPairs
        self.evalPairs = evalPairs
        self.droppedPairs = droppedPairs
        self.totalSteps = totalSteps
        self.epochs = epochs
        self.memory = memory
    }

    /// Pairs per optimizer step over all ranks: `pairs_per_rank x grad_accum x world_size`.
    public var globalBatch: Int { pairsPerRank * gradientAccumulation * worldSize }
    /// Pairs a step actually takes when the data holds fewer than `globalBatch` (nil: `globalBatch`).
    public var runningGlobalBatch: Int?

    // MARK: - Formatting

    /// `4 pairs = 4 per rank x 1 accumulation x 1 rank`, or, when the data is smaller than that,
    /// `8 pairs: all 8 train pairs each step (100 per rank x ... asked for 100)`.
    static func globalBatchText(_ facts: ProgressStartupSummary) -> String {
        let product = "\(facts.pairsPerRank) per rank x \(facts.gradientAccumulation) accumulation x \(facts.worldSize) rank\(facts.worldSize == 1 ? "" : "s")"
        guard let running = facts.runningGlobalBatch, running < facts.globalBatch else { return "\(facts.globalBatch) pairs = " + product }
        return "\(running) pairs: all \(facts.trainPairs) train pairs each step (\(product) asked for \(facts.globalBatch))"
    }

    /// A multi-line, aligned summary ending in a newline.
    public static func format(_ facts: ProgressStartupSummary) -> String {
        let dropped = facts.droppedPairs.reduce(0) { $0 + $1.count }
        var rows: [(String, String)] = [
            ("model", facts.modelDescription),
            ("parameters", "\(humanCount(facts.parameterCount)) (\(grouped(facts.parameterCount)))"),
            ("world size", "\(facts.worldSize) rank\(facts.worldSize == 1 ? "" : "s") x \(facts.threadsPerRank) thread\(facts.threadsPerRank == 1 ? "" : "s")"),
            ("global batch", globalBatchText(facts)),
            ("precision", facts.precision),
            ("loss", facts.lossDescription),
            ("train pairs", grouped(facts.trainPairs)),
            ("eval pairs", grouped(facts.evalPairs)),
            ("dropped pairs", grouped(dropped)),
        ]
        for reason in facts.droppedPairs where reason.count > 0 {
            rows.append(("  " + reason.reason, grouped(reason.count)))
        }
        rows.append(("steps", "\(grouped(facts.totalSteps)) (\(trimmed(facts.epochs)) epoch\(facts.epochs == 1 ? "" : "s"))"))
        let memory = facts.memory
        rows.append(("peak memory/rank", "~\(bytes(memory.totalBytes)) (estimate)"))
        rows.append(("  weights", bytes(memory.weightsBytes)))
        rows.append(("  optimizer", bytes(memory.optimizerBytes)))
        rows.append(("  activations", bytes(memory.activationsBytes)))
        rows.append(("  reference", bytes(memory.referenceBytes)))
        if memory.runtimeBytes > 0 { rows.append(("  runtime", bytes(memory.runtimeBytes))) }
        let keyWidth = rows.map(\.0.count).max() ?? 0
        return rows.map { key, value in
            key + String(repeating: " ", count: keyWidth - key.count) + "  " + value
        }.joined(separator: "\n") + "\n"
    }

    /// `1.5 KiB`, `12.3 MiB`, `1.80 GiB`.
    public static func bytes(_ count: Int) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(count), unit = 0
        while value >= 1024, unit < units.count - 1 { value /= 1024; unit += 1 }
        if unit == 0 { return "\(count) B" }
        return String(format: value < 10 ? "%.2f" : "%.1f", value) + " " + units[unit]
    }

    /// `25.8M`, `1.2B`, `950`.
    public static func humanCount(_ count: Int) -> String {
        let value = Double(count)
        if value >= 1e9 { return String(format: "%.2fB", value / 1e9) }
        if value >= 1e6 { return String(format: "%.2fM", value / 1e6) }
        if value >= 1e3 { return String(format: "%.1fK", value / 1e3) }
        return String(count)
    }

    /// `1,234,567`.
    static func grouped(_ count: Int) -> String {
        let digits = String(abs(count))
        var result = ""
        for (index, character) in digits.enumerated() {
            if index > 0, (digits.count - index) % 3 == 0 { result += "," }
            result.append(character)
        }
        return (count < 0 ? "-" : "") + result
    }

    static func trimmed(_ value: Double) -> String {
        value == value.rounded() ? String(Int(value)) : String(format: "%.2f", value)
    }
}
