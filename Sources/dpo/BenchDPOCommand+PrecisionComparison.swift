import DPOTools
import Foundation
import Kernels
import Training

extension BenchDPOCommand {
    /// `dpo bench dpo --compare-precision`: fp32 and fp16 steps in turn in one process
    /// (`PrecisionComparison`); a line per round on stderr as it ends, one JSON line at the end.
    /// One process only (`run` refuses more ranks before measuring anything).
    func runPrecisionComparison(sgemm: Double, sgemmPerCPU: Double, core: String) throws {
        let result = try PrecisionComparison.run(benchOptions()) { index, round in
            let line = String(format: "round %d (%@ first): fp32 %.3f s (CPU %.3f), fp16 %.3f s (CPU %.3f), fp16/fp32 CPU %.3f\n",
                              index + 1, round.fp16First ? "fp16" : "fp32", round.fp32.seconds, round.fp32.cpuSeconds,
                              round.fp16.seconds, round.fp16.cpuSeconds, round.cpuRatio)
            FileHandle.standardError.write(Data(line.utf8))
        }
        func list(_ figure: (PrecisionComparison.Round) -> Double, _ digits: Int = 4) -> String {
            "[" + result.rounds.map { number(figure($0), digits) }.joined(separator: ", ") + "]"
        }
        // Fraction of the single-core sgemm rate by CPU time: executed FLOPs per CPU-second of the step.
        func fraction(_ cpu: KeyPath<PrecisionComparison.Round, Double>) -> String {
            number(result.executedStepFLOPs * Double(result.rounds.count) / result.total(cpu) / 1e9 / sgemmPerCPU, 3)
        }
        let fields: [(String, String)] = [
            ("bench", "\"precision\""), ("model", json(model ?? preset)), ("threads", "\(BLAS.threads)"),
            ("batch_pairs", "\(batchPairs)"), ("seq", "\(seq)"), ("share_prompt", "\(sharePrompt)"),
            ("gradient_checkpointing", "\(gradientCheckpointing)"), ("tokens_per_step", "\(result.tokensPerStep)"),
            ("rounds", "\(result.rounds.count)"),
            ("fp16_over_fp32_cpu", number(result.totalCPURatio)), ("fp16_over_fp32_wall", number(result.totalWallRatio)),
            ("median_round_fp16_over_fp32_cpu", number(result.medianCPURatio)), ("fp16_faster_rounds", "\(result.fp16FasterRounds)"),
            ("fp32_step_cpu_s_total", number(result.total(\.fp32.cpuSeconds))), ("fp16_step_cpu_s_total", number(result.total(\.fp16.cpuSeconds))),
            ("fp32_fraction_of_sgemm_peak_by_cpu_time", fraction(\.fp32.cpuSeconds)),
            ("fp16_fraction_of_sgemm_peak_by_cpu_time", fraction(\.fp16.cpuSeconds)),
            ("sgemm_1core_gflops", number(sgemm, 1)), ("sgemm_1core_gflops_per_cpu_s", number(sgemmPerCPU, 1)),
            ("round_fp16_first", "[" + result.rounds.map { "\($0.fp16First)" }.joined(separator: ", ") + "]"),
            ("round_fp32_step_s", list(\.fp32.seconds)), ("round_fp16_step_s", list(\.fp16.seconds)),
            ("round_fp32_step_cpu_s", list(\.fp32.cpuSeconds)), ("round_fp16_step_cpu_s", list(\.fp16.cpuSeconds)),
            ("round_fp32_objective", list(\.fp32.objective, 6)), ("round_fp16_objective", list(\.fp16.objective, 6)),
            ("blas_core", "\"\(core)\""), ("load_average", loadAverage()),
        ]
        print("{" + fields.map { "\"\($0.0)\": \($0.1)" }.joined(separator: ", ") + "}")
    }
}
