import XCTest
import Kernels
import TestSupport
@testable import Llama

/// `backward`'s `headRowsFinished`: the LM head's gradient reported a vocabulary panel at a time
/// as the head's backward finishes each (ZeRO-2 sends those rows then instead of holding the
/// whole [V, H] gradient), on a vocabulary of three panels (512, 512, 76 rows).
final class ModelHeadRowsTests: XCTestCase {
    func testHeadRowsAreReportedPanelByPanelAsTheyBecomeFinal() throws {
        for tied in [true, false] {
            var config = ModelTestSupport.config(tied: tied)
            config.vocabSize = 2 * LabelLogProbs.panelRows + 76
            let model = try ModelTestSupport.model(config, weights: ModelTestSupport.weights(ParameterLayout(config: config), seed: 41))
            let batch = ModelTestSupport.batch(vocab: config.vocabSize, seed: 42)
            var random = TestRandom(seed: 43)
            let w = batch.targetIds.map { $0 >= 0 ? random.uniform() : 0 }
            let h = config.hiddenSize, L = config.numHiddenLayers
            let head = model.layout.entry(tied ? "model.embed_tokens.weight" : "lm_head.weight").range
            XCTAssertEqual(head.count, config.vocabSize * h)

            let plain = ModelTestSupport.gradient(model, batch, w).gradient
            _ = model.forward(batch, saveForBackward: true)
            var gradient = [Float](repeating: 0, count: model.layout.totalCount)
            var reports: [(elements: Range<Int>, values: [Float], laterRowsZero: Bool)] = []
            var headAtItsGroup: [Float] = []
            w.withUnsafeBufferPointer { dw in
                gradient.withUnsafeMutableBufferPointer { buffer in
                    let g = buffer  // a copy of the pointer the callbacks can capture
                    model.backward(dTokenLogps: dw, gradients: buffer, groupFinished: { group in
                        if group == L + 1 { headAtItsGroup = Array(g[head]) }
                    }, headRowsFinished: { elements in
                        reports.append((elements, Array(g[elements]), g[elements.upperBound..<head.upperBound].allSatisfy { $0 == 0 }))
                    })
                }
            }
            XCTAssertEqual(gradient, plain, "tied \(tied): reporting changes no value")
            XCTAssertEqual(reports.map(\.elements), [0..<512, 512..<1024, 1024..<1100].map {
                (head.lowerBound + $0.lowerBound * h)..<(head.lowerBound + $0.upperBound * h)
            }, "tied \(tied): one report per panel, ascending, covering the head")
            for (k, report) in reports.enumerated() {
                let relative = (report.elements.lowerBound - head.lowerBound)..<(report.elements.upperBound - head.lowerBound)
                XCTAssertEqual(report.values, Array(headAtItsGroup[relative]), "tied \(tied) panel \(k): final for the head when reported")
                XCTAssertTrue(report.laterRowsZero, "tied \(tied) panel \(k): reported before the next panel is written")
                XCTAssertTrue(report.values.contains { $0 != 0 }, "tied \(tied) panel \(k)")
                if !tied { XCTAssertEqual(report.values, Array(plain[report.elements]), "untied panel \(k): final for good") }
            }
        }
    }
}
