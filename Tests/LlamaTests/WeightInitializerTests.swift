import Foundation
import XCTest
@testable import Llama

/// `WeightInitializer`: transformers-like statistics, determinism, speed on minimind.
final class WeightInitializerTests: XCTestCase {
    func testStatisticsMatchTransformersInit() {
        var config = LlamaPreset.small.config
        config.padTokenId = 256
        let layout = ParameterLayout(config: config)
        let weights = WeightInitializer(seed: 42).weights(for: config)
        XCTAssertEqual(weights.count, layout.totalCount)
        for entry in layout.entries {
            let values = weights[entry.range]
            if entry.isNorm {
                XCTAssertTrue(values.allSatisfy { $0 == 1 }, "\(entry.name) must be ones")
                continue
            }
            var sample = Array(values)
            if entry.name == "model.embed_tokens.weight" {
                let width = entry.shape[1]
                XCTAssertTrue(sample[(256 * width)..<(257 * width)].allSatisfy { $0 == 0 }, "pad row zeroed")
                sample.removeSubrange((256 * width)..<(257 * width))
            }
            let n = Double(sample.count)
            let mean = sample.reduce(0.0) { $0 + Double($1) } / n
            let variance = sample.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / n
            // Mean of n draws of Normal(0, 0.02): standard error 0.02/sqrt(n); allow 5 of them.
            XCTAssertLessThan(abs(mean), 5 * 0.02 / n.squareRoot(), entry.name)
            // Sample std: relative standard error about 1/sqrt(2n); allow 5 of them.
            XCTAssertEqual(variance.squareRoot(), 0.02, accuracy: 0.02 * 5 / (2 * n).squareRoot(), entry.name)
            // Tails: fraction beyond 2 sigma is 4.55% for a normal.
            let beyond = Double(sample.filter { abs($0) > 0.04 }.count) / n
            XCTAssertEqual(beyond, 0.0455, accuracy: 0.01 + 5 * (0.0455 * 0.9545 / n).squareRoot(), entry.name)
        }
    }

    func testDeterministicAndSeedDependent() {
        let config = LlamaPreset.tiny.config
        let a = WeightInitializer(seed: 1).weights(for: config)
        let b = WeightInitializer(seed: 1).weights(for: config)
        let c = WeightInitializer(seed: 2).weights(for: config)
        XCTAssertEqual(a.map(\.bitPattern), b.map(\.bitPattern))
        XCTAssertNotEqual(a, c)
        // A tensor's values do not depend on the other tensors: a deeper model shares its first layers.
        var deeper = config
        deeper.numHiddenLayers = 3
        let d = WeightInitializer(seed: 1).weights(for: deeper)
        let name = "model.layers.1.mlp.up_proj.weight"
        XCTAssertEqual(a[ParameterLayout(config: config).entry(name).range], d[ParameterLayout(config: deeper).entry(name).range])
        // Different tensors get different streams.
        let layout = ParameterLayout(config: config)
        XCTAssertNotEqual(Array(a[layout.entry("model.layers.0.mlp.gate_proj.weight").range]),
                          Array(a[layout.entry("model.layers.0.mlp.up_proj.weight").range]))
    }

    /// Initialising minimind (~26M values) is cheap: CPU time per value, not wall time. The
    /// intent is speed (a regression to a slow generator, e.g. a system-RNG call or a lock per
    /// draw, costs 10x), but a wall-clock limit flakes on a loaded 2-core host, where the
    /// parallel fill waits for cores; CPU time (getrusage, all threads) counts only the work.
    /// Measured 15 ns a value (0.39 s CPU for 25.8M, AMD EPYC, at load 8); the bound, 100 ns, is
    /// 6.5x that: above what cache contention adds, below a 10x slower generator.
    func testMinimindInitIsFast() {
        let config = LlamaPreset.minimind.config
        let before = ResourceUsage.now()
        let weights = WeightInitializer(seed: 0).weights(for: config)
        let used = ResourceUsage.now() - before
        XCTAssertEqual(weights.count, ParameterLayout(config: config).totalCount)
        // A strided sample (test code is unoptimised; the statistics test covers the values).
        XCTAssertTrue(stride(from: 0, to: weights.count, by: 997).allSatisfy { weights[$0].isFinite && abs(weights[$0]) <= 1 })
        let nanoseconds = used.cpuSeconds * 1e9 / Double(weights.count)
        print("initialising \(weights.count) parameters: \(used.cpuSeconds) s CPU, \(nanoseconds) ns a value")
        XCTAssertLessThan(nanoseconds, 100, "initialising \(weights.count) parameters took \(used.cpuSeconds) s of CPU")
    }
}
