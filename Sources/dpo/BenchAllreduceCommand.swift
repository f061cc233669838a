import ArgumentParser
import Distributed
import Foundation

/// `dpo bench-allreduce`: the gradient reducer against a plain MPI_Allreduce of the same
/// bytes; rank 0 prints one JSON line. Run it under `launch/local.sh -n 2 --`.
struct BenchAllreduceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-allreduce",
        abstract: "Time the bucketed gradient all-reduce against a plain MPI_Allreduce (prints one JSON line).",
        shouldDisplay: false)

    @Option(help: "Gradient size in MB of fp32.") var megabytes = 100.0
    @Option(help: "Element type on the wire: fp32 or fp16.") var allreduceDtype = "fp32"
    @Option(help: "Largest bucket in MiB on the wire.") var bucketMb = 25.0
    @Option(help: "Parameter groups (layers) the gradient is split into.") var groups = 24
    @Option(help: "Timed repetitions (median reported, after one warm-up).") var repeats = 5
    @Option(help: "Simulated backward compute per step in ms, to measure overlap (0 = skip).") var computeMs = 0.0

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
