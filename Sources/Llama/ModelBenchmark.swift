import Foundation
import Kernels

/// Times the model's forward and forward+backward on random weights and tokens, and a
/// single-core sgemm of this machine for scale (what `dpo bench model` prints).
public struct ModelBenchmark {
    public struct Parameters: Sendable {
        public var config: LlamaConfig
        public var presetName: String
        public var rows: Int
        public var seqLen: Int
        public var threads: Int
        public var precision: Precision
        /// Timed repetitions of each measurement (the median is reported), after one warm-up.
        public var repetitions: Int

        public init(config: LlamaConfig, presetName: String, rows: Int, seqLen: Int, threads: Int = 1,
                    precision: Precision = .fp32, repetitions: Int = 3) {
            self.config = config; self.presetName = presetName; self.rows = rows; self.seqLen = seqLen
            self.threads = threads; self.precision = precision; self.repetitions = repetitions
        }
    }

    public struct Result: Codable, Sendable {
        public var preset: String
        public var precision: String
        public var rows: Int
        public var seqLen: Int
        public var threads: Int
        public var blasCore: String
        public var tokens: Int
        /// Non-embedding matmul parameters + LM head (the N of "6N per token").
        public var matmulParameters: Int
        public var forwardSeconds: Double
        public var forwardTokensPerSecond: Double
        public var forwardGFLOPS: Double
        public var trainSeconds: Double
        public var trainTokensPerSecond: Double
        public var trainGFLOPS: Double
        /// Single-thread 1024^3 sgemm rate of this machine.
        public var sgemmSingleCoreGFLOPS: Double
        /// trainGFLOPS / (threads * sgemmSingleCoreGFLOPS).
        public var trainFractionOfSgemm: Double
        public var peakResidentMB: Double
        /// Process CPU seconds of the same runs, and the rates per CPU-second: what the
        /// figures are on a machine shared with other work (wall-clock rates drop, these do not).
        public var forwardCPUSeconds: Double
        public var trainCPUSeconds: Double
        public var trainGFLOPSPerCPUSecond: Double
        public var sgemmGFLOPSPerCPUSecond: Double
        public var trainFractionOfSgemmByCPUTime: Double

        enum CodingKeys: String, CodingKey {
            case preset, precision, rows, threads, tokens
            case seqLen = "seq_len"
            case blasCore = "blas_core"
            case matmulParameters = "matmul_params"
            case forwardSeconds = "forward_s"
            case forwardTokensPerSecond = "forward_tokens_per_s"
            case forwardGFLOPS = "forward_gflops"
            case trainSeconds = "fwd_bwd_s"
            case trainTokensPerSecond = "fwd_bwd_tokens_per_s"
            case trainGFLOPS = "fwd_bwd_gflops"
            case sgemmSingleCoreGFLOPS = "sgemm_1core_gflops"
            case trainFractionOfSgemm = "fwd_bwd_fraction_of_sgemm"
            case peakResidentMB = "peak_rss_mb"
            case forwardCPUSeconds = "forward_cpu_s"
            case trainCPUSeconds = "fwd_bwd_cpu_s"
            case trainGFLOPSPerCPUSecond = "fwd_bwd_gflops_per_cpu_s"
            case sgemmGFLOPSPerCPUSecond = "sgemm_1core_gflops_per_cpu_s"
            case trainFractionOfSgemmByCPUTime = "fwd_bwd_fraction_of_sgemm_by_cpu_time"
        }
    }

    public let parameters: Parameters
    public init(_ parameters: Parameters) { self.parameters = parameters }

    // MARK: - FLOP model

    /// Matmul parameters per token: q, k, v, o, gate, up, down of every layer, plus the LM head.
    public static func matmulParameters(_ c: LlamaConfig) -> Int {
        let h = c.hiddenSize
        let perLayer = h * c.qDim * 2 + h * c.kvDim * 2 + 3 * h * c.intermediateSize
        return c.numHiddenLayers * perLayer + c.vocabSize * h
    }

    /// Forward FLOPs per token: 2N plus causal attention (QK^T and PV, 2*T*qDim each, halved).
    public static func forwardFLOPsPerToken(_ c: LlamaConfig, seqLen: Int) -> Double {
        2 * Double(matmulParameters(c)) + 2 * Double(c.numHiddenLayers * seqLen * c.qDim)
    }

    // MARK: - Running

    public func run() throws -> Result {
        let p = parameters, c = p.config
        let core = BLAS.ensureBestCore()
        let (sgemm, sgemmPerCPU) = Self.singleCoreSgemmGFLOPS()
        let previousThreads = BLAS.threads
        BLAS.threads = p.threads
        defer { BLAS.threads = previousThreads }
        let model = try LlamaModel(config: c, precision: p.precision, trainable: true)
        var random = SplitMix64(seed: 1)
        let weights = ParameterLayout(config: c).entries.flatMap { entry -> [Float] in
            (0..<entry.count).map { _ in entry.isNorm ? 1 : Float(random.nextUnit() * 2 - 1) * 0.035 }
        }
        weights.withUnsafeBufferPointer { model.loadWeights($0) }
        let n = p.rows * p.seqLen
        let inputs = (0..<n).map { _ in Int32(random.next() % UInt64(c.vocabSize)) }
        let targets = (0..<n).map { _ in Int32(random.next() % UInt64(c.vocabSize)) }
        let batch = TokenRows(rows: p.rows, seqLen: p.seqLen, inputIds: inputs, targetIds: targets,
                              lengths: [Int](repeating: p.seqLen, count: p.rows))
        var gradients = [Float](repeating: 0, count: model.layout.totalCount)
        let dLogps = [Float](repeating: 1 / Float(n), count: n)

        let (forwardSeconds, forwardCPU) = Self.median(repetitions: p.repetitions) { _ = model.forward(batch, saveForBackward: false) }
        let (trainSeconds, trainCPU) = Self.median(repetitions: p.repetitions) {
            _ = model.forward(batch, saveForBackward: true)
            dLogps.withUnsafeBufferPointer { d in
                gradients.withUnsafeMutableBufferPointer { model.backward(dTokenLogps: d, gradients: $0, groupFinished: nil) }
            }
        }
        let forwardFLOPs = Self.forwardFLOPsPerToken(c, seqLen: p.seqLen) * Double(n)
        let trainGFLOPS = 3 * forwardFLOPs / trainSeconds / 1e9
        return Result(
            preset: p.presetName, precision: p.precision.rawValue, rows: p.rows, seqLen: p.seqLen, threads: p.threads,
            blasCore: core, tokens: n, matmulParameters: Self.matmulParameters(c),
            forwardSeconds: forwardSeconds, forwardTokensPerSecond: Double(n) / forwardSeconds,
            forwardGFLOPS: forwardFLOPs / forwardSeconds / 1e9,
            trainSeconds: trainSeconds, trainTokensPerSecond: Double(n) / trainSeconds, trainGFLOPS: trainGFLOPS,
            sgemmSingleCoreGFLOPS: sgemm, trainFractionOfSgemm: trainGFLOPS / (Double(p.threads) * sgemm),
            peakResidentMB: Self.peakResidentMB(),
            forwardCPUSeconds: forwardCPU, trainCPUSeconds: trainCPU,
            trainGFLOPSPerCPUSecond: 3 * forwardFLOPs / trainCPU / 1e9, sgemmGFLOPSPerCPUSecond: sgemmPerCPU,
            trainFractionOfSgemmByCPUTime: 3 * forwardFLOPs / trainCPU / 1e9 / sgemmPerCPU)
    }

    /// Best of `trials` timed single-thread 1024x1024x1024 sgemm runs, in GFLOP/s by wall clock and per CPU-second.
    public static func singleCoreSgemmGFLOPS(size: Int = 1024, trials: Int = 4) -> (wall: Double, perCPUSecond: Double) {
        BLAS.ensureBestCore()
        let saved = BLAS.threads
        BLAS.threads = 1
        defer { BLAS.threads = saved }
        var random = SplitMix64(seed: 2)
        let a = (0..<(size * size)).map { _ in Float(random.nextUnit()) }
        let b = (0..<(size * size)).map { _ in Float(random.nextUnit()) }
        var c = [Float](repeating: 0, count: size * size)
        var best = Double.infinity, bestCPU = Double.infinity
        // OpenBLAS's worker threads spin for a while after a threaded call; their spinning
        // would be billed to this single-thread sgemm's CPU time. Let them go to sleep first.
        usleep(300_000)
        for _ in 0..<max(1, trials) {
            let start = DispatchTime.now().uptimeNanoseconds, startCPU = processCPUSeconds()
            c.withUnsafeMutableBufferPointer { cp in
                Matmul.gemm(transposeA: false, transposeB: false, m: size, n: size, k: size,
                            a: a, lda: size, b: b, ldb: size, beta: 0, c: cp.baseAddress!, ldc: size)
            }
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            bestCPU = min(bestCPU, processCPUSeconds() - startCPU)
        }
        let flops = 2 * Double(size * size * size)
        return (flops / best / 1e9, flops / bestCPU / 1e9)
    }

    /// Median wall-clock and median process-CPU seconds of `repetitions` runs after one warm-up.
    static func median(repetitions: Int, _ body: () -> Void) -> (wall: Double, cpu: Double) {
        body()  // warm-up: allocates the arena, faults pages in
        var times: [Double] = [], cpuTimes: [Double] = []
        for _ in 0..<max(1, repetitions) {
            let start = DispatchTime.now().uptimeNanoseconds, startCPU = processCPUSeconds()
            body()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            cpuTimes.append(processCPUSeconds() - startCPU)
        }
        times.sort(); cpuTimes.sort()
        return (times[times.count / 2], cpuTimes[cpuTimes.count / 2])
    }

    public static func processCPUSeconds() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }

    /// VmHWM from /proc/self/status (0 where unavailable).
    public static func peakResidentMB() -> Double {
        Double(peakResidentKilobytes()) / 1024
    }

    /// VmHWM in KiB from /proc/self/status (0 where unavailable).
    public static func peakResidentKilobytes() -> Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        return statusKilobytes("VmHWM", in: status) ?? 0
    }

    /// The KiB figure of field `name` in /proc/<pid>/status text. The kernel right-aligns it in 8
    /// columns after a tab ("VmHWM:\t  123456 kB"), so from 10^7 KiB (9.5 GiB) on there is no
    /// space before the digits: split on tabs and spaces both.
    public static func statusKilobytes(_ name: String, in status: String) -> Int? {
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix(name + ":") }) else { return nil }
        return line.dropFirst(name.count + 1).split(whereSeparator: { $0 == " " || $0 == "\t" }).compactMap { Int($0) }.first
    }
}
