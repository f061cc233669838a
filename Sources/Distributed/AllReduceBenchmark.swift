import Foundation

/// Times the gradient reducer against a plain MPI_Allreduce of the same bytes
/// (`dpo bench-allreduce`).
public enum AllReduceBenchmark {
    public struct Parameters: Sendable {
        /// Gradient size in MB (10^6 bytes of fp32).
        public var megabytes: Double = 100
        public var wireType: GradientReducer.WireType = .fp32
        public var bucketMegabytes: Double = 25
        /// Parameter groups the gradient is split into (like the layers of a model).
        public var groups = 24
        public var repeats = 5
        /// Simulated backward compute per step in milliseconds, spread over the groups; 0 = no overlap test.
        public var computeMilliseconds = 0.0
        public init() {}
    }

    public struct Result: Sendable {
        public var ranks: Int
        public var gradientBytes: Int
        public var wireBytes: Int
        public var buckets: Int
        /// Median seconds of one plain blocking all-reduce of the wire bytes.
        public var plainSeconds: Double
        /// Median seconds of groupReady(all) + finish() (no compute between).
        public var reducerSeconds: Double
        /// fp16 only: a plain fp32 MPI_Allreduce of the whole gradient (what fp16 replaces).
        public var plainFloatSeconds: Double?
        /// With simulated compute: median step seconds when groups are reported during
        /// compute (overlapped) and when everything is reduced after compute (serial).
        public var overlappedStepSeconds: Double?
        public var serialStepSeconds: Double?
        public var computeSeconds: Double?
        /// Algorithm bandwidth: wire bytes per second.
        public var plainGBps: Double { Double(wireBytes) / plainSeconds / 1e9 }
        public var reducerGBps: Double { Double(wireBytes) / reducerSeconds / 1e9 }
        /// fp32 gradient bytes averaged per second by the reducer (compares fp16 with fp32).
        public var gradientGBps: Double { Double(gradientBytes) / reducerSeconds / 1e9 }
        public var ratio: Double { plainSeconds / reducerSeconds }

        /// One JSON object on one line.
        public var json: String {
            var fields: [(String, String)] = [
                ("bench", "\"allreduce\""), ("ranks", "\(ranks)"), ("gradient_mb", fmt(Double(gradientBytes) / 1e6)),
                ("wire_mb", fmt(Double(wireBytes) / 1e6)), ("buckets", "\(buckets)"),
                ("plain_seconds", fmt(plainSeconds)), ("plain_gbps", fmt(plainGBps)),
                ("reducer_seconds", fmt(reducerSeconds)), ("reducer_gbps", fmt(reducerGBps)),
                ("gradient_gbps", fmt(gradientGBps)), ("ratio", fmt(ratio)),
            ]
            if let plainFloatSeconds {
                fields += [("plain_fp32_seconds", fmt(plainFloatSeconds)), ("ratio_vs_plain_fp32", fmt(plainFloatSeconds / reducerSeconds))]
            }
            if let overlappedStepSeconds, let serialStepSeconds, let computeSeconds {
                fields += [("compute_seconds", fmt(computeSeconds)), ("serial_step_seconds", fmt(serialStepSeconds)),
                           ("overlapped_step_seconds", fmt(overlappedStepSeconds)),
                           ("hidden_fraction", fmt((serialStepSeconds - overlappedStepSeconds) / reducerSeconds))]
            }
            return "{" + fields.map { "\"\($0.0)\": \($0.1)" }.joined(separator: ", ") + "}"
        }

        private func fmt(_ value: Double) -> String { String(format: "%.4f", value) }
    }

    public static func run(_ parameters: Parameters, communicator c: Communicator) throws -> Result {
        let count = Int(parameters.megabytes * 1e6) / 4
        guard count > 0, parameters.groups > 0, parameters.repeats > 0 else {
            throw DistributedError.invalidGroups("bench needs a positive size, group count and repeats")
        }
        var groupRanges: [Range<Int>] = []
        for g in 0..<parameters.groups {
            groupRanges.append((count * g / parameters.groups)..<(count * (g + 1) / parameters.groups))
        }
        let gradients = UnsafeMutableBufferPointer<Float>.allocate(capacity: count)
        defer { gradients.deallocate() }
        for i in 0..<count { gradients[i] = Float(i % 1000) * 1e-3 }

        // A plain blocking all-reduce of the same wire bytes, and the reducer, alternately
        // (so load from other processes affects both alike).
        let halves = UnsafeMutableBufferPointer<UInt16>.allocate(capacity: parameters.wireType == .fp16 ? count : 0)
        defer { halves.deallocate() }
        halves.initialize(repeating: 0x3c00)
        let reducer = try GradientReducer(communicator: c, gradients: gradients, groupRanges: groupRanges,
                                          bucketMegabytes: parameters.bucketMegabytes, wireType: parameters.wireType)
        var plain: [Double] = [], reduced: [Double] = [], plainFloat: [Double] = []
        for _ in 0...parameters.repeats {
            if parameters.wireType == .fp16 { plainFloat.append(timed(c) { c.allReduceSum(gradients) }) }
            plain.append(timed(c) {
                if parameters.wireType == .fp32 { c.allReduceSum(gradients) } else { c.allReduceSumHalf(halves) }
            })
            reduced.append(timed(c) {
                for g in groupRanges.indices.reversed() { reducer.groupReady(g) }
                _ = reducer.finish()
            })
        }
        var result = Result(ranks: c.size, gradientBytes: count * 4, wireBytes: count * parameters.wireType.bytes,
                            buckets: reducer.buckets.count, plainSeconds: median(plain.dropFirst()),
                            reducerSeconds: median(reduced.dropFirst()))
        if parameters.wireType == .fp16 { result.plainFloatSeconds = median(plainFloat.dropFirst()) }
        if parameters.computeMilliseconds > 0 {
            let perGroup = parameters.computeMilliseconds / 1000 / Double(parameters.groups)
            var overlapped: [Double] = [], serial: [Double] = []
            for _ in 0...parameters.repeats {
                overlapped.append(timed(c) {
                    for g in groupRanges.indices.reversed() { busy(seconds: perGroup); reducer.groupReady(g) }
                    _ = reducer.finish()
                })
                serial.append(timed(c) {
                    for _ in groupRanges.indices.reversed() { busy(seconds: perGroup) }
                    _ = reducer.finish()
                })
            }
            result.overlappedStepSeconds = median(overlapped.dropFirst())
            result.serialStepSeconds = median(serial.dropFirst())
            result.computeSeconds = parameters.computeMilliseconds / 1000
        }
        return result
    }

    /// Seconds of `body` on the slowest rank (every rank starts after a barrier).
    static func timed(_ c: Communicator, _ body: () -> Void) -> Double {
        c.barrier()
        let start = DispatchTime.now().uptimeNanoseconds
        body()
        let mine = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
        return Double(c.max(Int64(mine * 1e9))) * 1e-9
    }

    static func median(_ values: ArraySlice<Double>) -> Double {
        let sorted = values.sorted()
        return sorted[sorted.count / 2]
    }

    nonisolated(unsafe) static var blackHole: Float = 0

    /// Floating-point work (a stand-in for a layer's backward) for `seconds`.
    static func busy(seconds: Double) {
        let end = DispatchTime.now().uptimeNanoseconds + UInt64(seconds * 1e9)
        var x: Float = 1
        while DispatchTime.now().uptimeNanoseconds < end {
            for _ in 0..<2000 { x = x * 0.999_9 + 1e-4 }
        }
        blackHole = x
    }
}
