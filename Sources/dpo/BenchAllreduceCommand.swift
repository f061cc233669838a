import ArgumentParser
import Distributed
import Foundation
import Kernels
import Llama

/// `dpo bench allreduce` (and the hidden alias `dpo bench-allreduce`): the gradient reducer
/// against a plain MPI_Allreduce of the same bytes; rank 0 prints one JSON line. Run it under
/// `launch/local.sh -n 2 --`.
struct BenchAllreduceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-allreduce",
        abstract: "Time the bucketed gradient all-reduce against a plain MPI_Allreduce (prints one JSON line).",
        shouldDisplay: false)

    @OptionGroup var options: AllreduceBenchOptions

    func run() throws { try options.run() }
}

/// The options and the run of the all-reduce benchmark, shared by both spellings of the command.
struct AllreduceBenchOptions: ParsableArguments {
    @Option(help: "Gradient size in MB of fp32.") var megabytes = 100.0
    @Option(help: "Element type on the wire: fp32 or fp16.") var allreduceDtype = "fp32"
    @Option(help: "Largest bucket in MiB on the wire.") var bucketMb = 25.0
    @Option(help: "Parameter groups (layers) the gradient is split into.") var groups = 24
    @Option(help: "Timed repetitions (median reported, after one warm-up).") var repeats = 5
    @Option(help: "Simulated backward compute per step in ms, to measure overlap (0 = skip).") var computeMs = 0.0
    @Option(help: "Time real forward+backward steps of this preset (tiny, small, minimind): reducer overlapped, after backward, no communication.")
    var preset: String?
    @Option(help: "Rows per rank for --preset.") var rows = 4
    @Option(help: "Sequence length for --preset.") var seq = 128

    func run() throws {
        guard let wireType = GradientReducer.WireType(rawValue: allreduceDtype) else {
            throw ValidationError("--allreduce-dtype must be fp32 or fp16, got \(allreduceDtype)")
        }
        var parameters = AllReduceBenchmark.Parameters()
        parameters.megabytes = megabytes
        parameters.wireType = wireType
        parameters.bucketMegabytes = bucketMb
        parameters.groups = groups
        parameters.repeats = repeats
        parameters.computeMilliseconds = computeMs
        if let preset {
            guard let chosen = LlamaPreset(rawValue: preset) else {
                throw ValidationError("--preset must be one of \(LlamaPreset.allCases.map(\.rawValue)), got \(preset)")
            }
            try World.run { try modelOverlap(chosen, wireType: wireType, communicator: $0) }
            return
        }
        try World.run { communicator in
            let result = try AllReduceBenchmark.run(parameters, communicator: communicator)
            if communicator.isPrimary {
                var line = result.json
                line.insert(contentsOf: "\"dtype\": \"\(wireType.rawValue)\", \"bucket_mb\": \(bucketMb), ", at: line.index(after: line.startIndex))
                print(line)
            }
        }
    }
}

// MARK: - Overlap with a real backward

extension AllreduceBenchOptions {
    /// Median step seconds (slowest rank) of forward+backward with the reducer fed by
    /// `groupFinished` (overlapped), with `finish()` only after backward (serial), and with
    /// no communication at all; rank 0 prints one JSON line.
    func modelOverlap(_ preset: LlamaPreset, wireType: GradientReducer.WireType, communicator c: Communicator) throws {
        _ = BLAS.ensureBestCore()
        BLAS.threads = ThreadShare.threads(for: c)
        let config = preset.config
        let model = try LlamaModel(config: config, precision: .fp32, trainable: true)
        var seed: UInt64 = 12345
        func next() -> UInt64 { seed = seed &* 6364136223846793005 &+ 1442695040888963407; return seed >> 11 }
        var weights = model.layout.entries.flatMap { entry in
            (0..<entry.count).map { _ in entry.isNorm ? Float(1) : (Float(next() % 1000) / 1000 - 0.5) * 0.07 }
        }
        weights.withUnsafeMutableBufferPointer { c.broadcastParameters($0) }
        weights.withUnsafeBufferPointer { model.loadWeights($0) }
        let n = rows * seq
        let batch = TokenRows(rows: rows, seqLen: seq, inputIds: (0..<n).map { _ in Int32(next() % UInt64(config.vocabSize)) },
                              targetIds: (0..<n).map { _ in Int32(next() % UInt64(config.vocabSize)) },
                              lengths: [Int](repeating: seq, count: rows))
        let dLogps = [Float](repeating: 1 / Float(n), count: n)
        let gradients = UnsafeMutableBufferPointer<Float>.allocate(capacity: model.layout.totalCount)
        defer { gradients.deallocate() }
        let reducer = try GradientReducer(communicator: c, gradients: gradients, groupRanges: model.layout.groupRanges,
                                          bucketMegabytes: bucketMb, wireType: wireType)
        func step(_ mode: Int) -> Double {
            c.barrier()
            let start = DispatchTime.now().uptimeNanoseconds
            gradients.update(repeating: 0)
            _ = model.forward(batch, saveForBackward: true)
            dLogps.withUnsafeBufferPointer { d in
                model.backward(dTokenLogps: d, gradients: gradients, groupFinished: mode == 0 ? reducer.groupReady : nil)
            }
            if mode < 2 { _ = reducer.finish() }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
            return Double(c.max(Int64(seconds * 1e9))) * 1e-9
        }
        var times: [[Double]] = [[], [], []]
        _ = step(0)
        for _ in 0..<repeats { for mode in 0..<3 { times[mode].append(step(mode)) } }
        let medians = times.map { $0.sorted()[$0.count / 2] }
        let communication = medians[1] - medians[2]
        if c.isPrimary {
            print("{\"bench\": \"allreduce_overlap\", \"preset\": \"\(preset.rawValue)\", \"ranks\": \(c.size), "
                + "\"threads\": \(BLAS.threads), \"tokens_per_rank\": \(n), \"gradient_mb\": \(String(format: "%.1f", Double(gradients.count) * 4e-6)), "
                + "\"dtype\": \"\(wireType.rawValue)\", \"bucket_mb\": \(bucketMb), \"buckets\": \(reducer.buckets.count), "
                + "\"compute_only_seconds\": \(String(format: "%.4f", medians[2])), "
                + "\"serial_step_seconds\": \(String(format: "%.4f", medians[1])), "
                + "\"overlapped_step_seconds\": \(String(format: "%.4f", medians[0])), "
                + "\"hidden_fraction\": \(String(format: "%.3f", communication > 0 ? (medians[1] - medians[0]) / communication : 0))}")
        }
    }
}
