import Foundation
import Kernels
import Llama
import TestSupport
import XCTest

@testable import Training

/// The fused optimizer sweep (`FlatOptimizer.step(weights:gradients:scaling:learningRate:output:)`,
/// AdamW.c) against the plain sequence it replaces, written here as separate scalar loops:
/// unscale, clip, AdamW, cast to the working precision. Each element sees the same float
/// operations in the same order, so the results must be bit-identical, at any thread count,
/// on the AVX-512 and the portable path, for sizes that are no multiple of the vector width
/// (16) or of the chunking.
final class FusedOptimizerTests: XCTestCase {
    private let options = OptimizerOptions(kind: .adamw, weightDecay: 0.1, beta1: 0.8, beta2: 0.95, epsilon: 1e-6)

    /// State of one run: weights, gradients (scaled by the loss scale), moments.
    private struct State: Equatable {
        var weights: [Float]
        var gradients: [Float]
        var first: [Float]
        var second: [Float]
        var working32: [Float]
        var working16: [UInt16]
    }

    /// Norm weights (no decay) at ranges crossing the chunk boundaries of a two-way split, as a layout would give.
    private func exemptRanges(_ count: Int) -> [Range<Int>] {
        [3..<9, (count / 2 - 5)..<(count / 2 + 7), (count - 4)..<count].filter { $0.lowerBound >= 0 && $0.upperBound <= count }
    }

    private func decayMask(_ count: Int) -> [Float] {
        var mask = [Float](repeating: 1, count: count)
        for r in exemptRanges(count) { for i in r { mask[i] = 0 } }
        return mask
    }

    private func initialState(_ count: Int, seed: UInt64) -> State {
        var random = TestRandom(seed: seed)
        return State(weights: random.array(count), gradients: random.array(count, scale: 3000), first: random.array(count, scale: 0.01),
                     second: random.array(count).map { $0 * $0 * 1e-4 }, working32: [Float](repeating: 0, count: count),
                     working16: [UInt16](repeating: 0, count: count))
    }

    // MARK: - the oracle: the unfused sequence, one loop per operation

    private func oracleStep(_ s: inout State, mask: [Float], t: Int, lr: Double, unscale: Float, clip: Float, fp16: Bool) {
        let n = s.weights.count
        if unscale != 1 { for i in 0..<n { s.gradients[i] *= unscale } }
        if clip != 1 { for i in 0..<n { s.gradients[i] *= clip } }
        let b1 = Float(options.beta1), b2 = Float(options.beta2)
        let decay = Float(lr * options.weightDecay)
        let stepSize = Float(lr / (1 - pow(options.beta1, Double(t))))
        let root = Float((1 - pow(options.beta2, Double(t))).squareRoot())
        let eps = Float(options.epsilon)
        for i in 0..<n {
            let g = s.gradients[i]
            var w = s.weights[i]
            if mask[i] == 1 { w -= w * decay }
            let m = s.first[i] + (g - s.first[i]) * (1 - b1)
            let v = s.second[i] * b2 + (1 - b2) * g * g
            s.first[i] = m
            s.second[i] = v
            s.weights[i] = w - stepSize * (m / (v.squareRoot() / root + eps))
        }
        if fp16 { s.working16 = Half.encode(s.weights) } else { s.working32 = s.weights }
    }

    /// The oracle's norm: a plain sequential Double sum over the unscaled gradients.
    private func oracleNorm(_ g: [Float], unscale: Float) -> Double {
        g.reduce(0.0) { let x = Double($1 * unscale); return $0 + x * x }.squareRoot()
    }

    // MARK: - the fused step

    private func fusedStep(_ optimizer: FlatOptimizer, _ s: inout State, lr: Double, unscale: Float, clip: Float, fp16: Bool) {
        s.weights.withUnsafeMutableBufferPointer { w in
            s.gradients.withUnsafeMutableBufferPointer { g in
                let scaling = FlatOptimizer.GradientScaling(unscale: unscale, clip: clip)
                if fp16 {
                    s.working16.withUnsafeMutableBufferPointer { o in
                        optimizer.step(weights: w, gradients: g, scaling: scaling, learningRate: lr, output: .fp16(o.baseAddress!))
                    }
                } else {
                    s.working32.withUnsafeMutableBufferPointer { o in
                        optimizer.step(weights: w, gradients: g, scaling: scaling, learningRate: lr, output: .fp32(o.baseAddress!))
                    }
                }
            }
        }
        s.first = optimizer.firstMoment.array
        s.second = optimizer.secondMoment.array
    }

    /// Three steps from the same state, oracle vs fused; compares every array bit for bit.
    private func compare(count: Int, threads: Int, fp16: Bool, clipping: Bool, lossScale: Float, portable: Bool,
                         file: StaticString = #filePath, line: UInt = #line) throws {
        let previous = BLAS.threads
        BLAS.threads = threads
        AdamWSweep.forcePortable(portable)
        defer { BLAS.threads = previous; AdamWSweep.forcePortable(false) }
        let what = "n=\(count) threads=\(threads) fp16=\(fp16) clip=\(clipping) scale=\(lossScale) portable=\(portable)"
        let mask = decayMask(count)
        let optimizer = FlatOptimizer(options: options, decayMask: mask)
        var start = initialState(count, seed: UInt64(count))
        try optimizer.restore(stepCount: 0, firstMoment: start.first, secondMoment: start.second)
        var expected = start
        for t in 1...3 {
            let unscale = 1 / lossScale
            let norm = start.gradients.withUnsafeBufferPointer { GradientClipping.globalNorm($0, unscale: unscale) }
            let reference = oracleNorm(start.gradients, unscale: unscale)
            XCTAssertEqual(norm, reference, accuracy: reference * 1e-12, "\(what) step \(t): norm", file: file, line: line)
            let clip = GradientClipping.factor(norm: norm, maxNorm: clipping ? 1 : 0)
            XCTAssertTrue(clipping ? clip < 1 : clip == 1, "\(what): the case clips as named", file: file, line: line)
            let lr = 1e-3 * Double(t)
            oracleStep(&expected, mask: mask, t: t, lr: lr, unscale: unscale, clip: clip, fp16: fp16)
            fusedStep(optimizer, &start, lr: lr, unscale: unscale, clip: clip, fp16: fp16)
            XCTAssertEqual(start.weights.map(\.bitPattern), expected.weights.map(\.bitPattern), "\(what) step \(t): weights", file: file, line: line)
            XCTAssertEqual(start.gradients.map(\.bitPattern), expected.gradients.map(\.bitPattern), "\(what) step \(t): gradients", file: file, line: line)
            XCTAssertEqual(start.first.map(\.bitPattern), expected.first.map(\.bitPattern), "\(what) step \(t): exp_avg", file: file, line: line)
            XCTAssertEqual(start.second.map(\.bitPattern), expected.second.map(\.bitPattern), "\(what) step \(t): exp_avg_sq", file: file, line: line)
            if fp16 {
                XCTAssertEqual(start.working16, expected.working16, "\(what) step \(t): fp16 working weights", file: file, line: line)
            } else {
                XCTAssertEqual(start.working32.map(\.bitPattern), expected.working32.map(\.bitPattern), "\(what) step \(t): working weights",
                               file: file, line: line)
            }
            // Next step: fresh gradients at the loss scale.
            var random = TestRandom(seed: UInt64(100 + t))
            start.gradients = random.array(count, scale: 3000)
            expected.gradients = start.gradients
        }
        XCTAssertEqual(optimizer.stepCount, 3)
    }

    /// Sizes: below one vector, a few vectors plus a tail, and past two sweep chunks and two
    /// norm blocks (so 2 threads split both), none a multiple of 16.
    private let sizes = [13, 1_003, 2 * AdamWSweep.minimumChunk + 37, 2 * SumOfSquares.blockSize + 1_001]

    func testFusedSweepIsBitIdenticalToTheUnfusedSequence() throws {
        for count in sizes {
            for threads in [1, 2] {
                for fp16 in [false, true] {
                    try compare(count: count, threads: threads, fp16: fp16, clipping: false, lossScale: 1, portable: false)
                    try compare(count: count, threads: threads, fp16: fp16, clipping: true, lossScale: 1024, portable: false)
                }
            }
        }
    }

    func testPortableLoopsAreBitIdenticalToTheUnfusedSequence() throws {
        for count in [13, 2 * AdamWSweep.minimumChunk + 37] {
            for fp16 in [false, true] {
                try compare(count: count, threads: 2, fp16: fp16, clipping: true, lossScale: 4096, portable: true)
                try compare(count: count, threads: 1, fp16: fp16, clipping: false, lossScale: 1, portable: true)
            }
        }
    }

    /// The gradient-only entry (`step(weights:gradients:learningRate:)`) leaves the gradients
    /// as they are and updates like the fused one without scaling or output.
    func testPlainEntryMatchesTheFusedSweep() {
        let count = 2 * AdamWSweep.minimumChunk + 5
        let mask = decayMask(count)
        let plain = FlatOptimizer(options: options, decayMask: mask), fused = FlatOptimizer(options: options, decayMask: mask)
        var a = initialState(count, seed: 7), b = a
        let gradients = a.gradients
        a.weights.withUnsafeMutableBufferPointer { w in
            gradients.withUnsafeBufferPointer { plain.step(weights: w, gradients: $0, learningRate: 0.01) }
        }
        b.weights.withUnsafeMutableBufferPointer { w in
            b.gradients.withUnsafeMutableBufferPointer {
                fused.step(weights: w, gradients: $0, scaling: .init(), learningRate: 0.01, output: .none)
            }
        }
        XCTAssertEqual(a.weights.map(\.bitPattern), b.weights.map(\.bitPattern))
        XCTAssertEqual(plain.firstMoment.array, fused.firstMoment.array)
        XCTAssertEqual(b.gradients, gradients, "no scaling: the gradients are unchanged")
    }

    /// The layout constructor decays exactly where the mask constructor with the layout's mask does.
    func testLayoutDecayRunsMatchTheMask() {
        let config = LlamaConfig(hiddenSize: 8, intermediateSize: 12, numHiddenLayers: 2, numAttentionHeads: 2, numKeyValueHeads: 1,
                                 vocabSize: 11)
        let layout = ParameterLayout(config: config)
        for range in [0..<layout.totalCount, 5..<(layout.totalCount - 9)] {
            var mask = [Float](repeating: 1, count: range.count)
            for entry in layout.entries where entry.isNorm || entry.isBias {
                for i in entry.range.clamped(to: range) { mask[i - range.lowerBound] = 0 }
            }
            let fromLayout = FlatOptimizer(options: options, layout: layout, range: range)
            var expanded = [Float](repeating: -1, count: range.count)
            for run in fromLayout.decayRuns { for i in run.range { expanded[i] = run.decays ? 1 : 0 } }
            XCTAssertEqual(expanded, mask, "runs cover the range once, decaying where the mask is 1 (\(range))")
            XCTAssertEqual(fromLayout.decayRuns.map(\.range), FlatOptimizer(options: options, decayMask: mask).decayRuns.map(\.range))
        }
    }

    /// Large moment buffers are mapped pages: zero (Adam's initial state) without a fill.
    func testMomentsStartAtZero() {
        let optimizer = FlatOptimizer(options: options, decayMask: [Float](repeating: 1, count: 1 << 20))
        XCTAssertTrue(optimizer.firstMoment.array.allSatisfy { $0 == 0 })
        XCTAssertTrue(optimizer.secondMoment.array.allSatisfy { $0 == 0 })
        XCTAssertEqual(FlatOptimizer(options: OptimizerOptions(kind: .sgd), decayMask: [1, 1]).firstMoment.count, 0)
    }
}
