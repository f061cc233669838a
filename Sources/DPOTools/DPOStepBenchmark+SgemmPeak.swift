import Distributed
import Foundation
import Llama

extension DPOStepBenchmark {
    /// This host's single-core sgemm rate, one figure agreed by every rank.
    ///
    /// Ranks on one host measuring at the same time share its caches and memory bandwidth (and
    /// cores, when there are more ranks than cores): two ranks of a 2-core host read 141 instead
    /// of ~200 GFLOP/s, which made a 2-rank step look faster than the peak. So the ranks take
    /// turns: rank r measures (best of `trials` runs, `ModelBenchmark.singleCoreSgemmGFLOPS`)
    /// while the others wait without spinning (`quietBarrier`), and every rank returns the best
    /// figure of all ranks (the peak a core of this machine reaches).
    public static func agreedSgemmPeak(communicator: Communicator, trials: Int = 4) -> (wall: Double, perCPUSecond: Double) {
        var best = (wall: 0.0, perCPUSecond: 0.0)
        for turn in 0..<communicator.size {
            if communicator.rank == turn {
                let measured = ModelBenchmark.singleCoreSgemmGFLOPS(trials: trials)
                best = (Swift.max(best.wall, measured.wall), Swift.max(best.perCPUSecond, measured.perCPUSecond))
            }
            quietBarrier(communicator)
        }
        // MFLOP/s as integers: the communicator's maximum is over Int64.
        let wall = communicator.max(Int64((best.wall * 1e3).rounded()))
        let perCPU = communicator.max(Int64((best.perCPUSecond * 1e3).rounded()))
        return (Double(wall) / 1e3, Double(perCPU) / 1e3)
    }

    /// A barrier whose waiting ranks sleep between polls instead of spinning in MPI (a spinning
    /// rank would take the core a measuring rank needs when ranks outnumber free cores).
    static func quietBarrier(_ communicator: Communicator) {
        guard communicator.size > 1 else { return }
        var token: Float = 0
        withUnsafeMutablePointer(to: &token) { pointer in
            let request = communicator.startAllReduceSum(UnsafeMutableBufferPointer(start: pointer, count: 1))
            while !request.test() { usleep(1_000) }
        }
    }
}
