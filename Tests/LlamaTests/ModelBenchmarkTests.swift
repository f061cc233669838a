import XCTest
@testable import Llama

final class ModelBenchmarkTests: XCTestCase {
    /// minimind: per layer q,o 512x512 each, k,v 128x512 each, gate/up/down 1408x512 each
    /// = 524288 + 131072 + 2162688 = 2818048; x 8 layers + LM head 6400x512 = 25821184.
    /// Forward FLOPs per token at T = 256: 2 x 25821184 + 2 x 8 layers x 256 x 512 (causal attention).
    func testFLOPModel() {
        let c = LlamaPreset.minimind.config
        XCTAssertEqual(ModelBenchmark.matmulParameters(c), 25_821_184)
        XCTAssertEqual(ModelBenchmark.forwardFLOPsPerToken(c, seqLen: 256), 2 * 25_821_184 + 2 * 8 * 256 * 512)
    }

    /// A tiny run fills every figure with a positive, finite number.
    func testTinyRunReportsFiniteRates() throws {
        let result = try ModelBenchmark(.init(config: LlamaPreset.tiny.config, presetName: "tiny", rows: 2, seqLen: 16,
                                               threads: 1, precision: .fp16, repetitions: 1)).run()
        for value in [result.forwardTokensPerSecond, result.forwardGFLOPS, result.trainTokensPerSecond, result.trainGFLOPS,
                      result.sgemmSingleCoreGFLOPS, result.trainFractionOfSgemm, result.trainGFLOPSPerCPUSecond] {
            XCTAssertTrue(value.isFinite && value > 0, "\(value)")
        }
        XCTAssertEqual(result.tokens, 32)
        XCTAssertNotEqual(result.blasCore.lowercased(), "prescott")
    }
}
