import XCTest

/// Central finite differences of a scalar function (Double-accumulated by the caller),
/// compared with an analytic gradient at sampled coordinates.
///
/// Passes when `|numeric - analytic| <= absoluteTolerance + relativeTolerance * |analytic|`
/// at every sampled index.
func checkGradient(
    _ name: String, at x: [Float], analytic: [Float], samples: Int = 24, step: Float = 1e-2,
    absoluteTolerance: Double = 2e-3, relativeTolerance: Double = 1e-2,
    file: StaticString = #filePath, line: UInt = #line, loss: ([Float]) -> Double
) {
    precondition(x.count == analytic.count)
    var indices = Array(0..<x.count)
    if indices.count > samples {
        // Deterministic spread of indices over the tensor.
        let stride = Double(x.count) / Double(samples)
        indices = (0..<samples).map { Int(Double($0) * stride + stride / 2) }
    }
    var worst = 0.0
    for i in indices {
        var plus = x, minus = x
        plus[i] += step; minus[i] -= step
        let numeric = (loss(plus) - loss(minus)) / (Double(plus[i]) - Double(minus[i]))
        let error = abs(numeric - Double(analytic[i]))
        worst = max(worst, error)
        XCTAssertLessThanOrEqual(error, absoluteTolerance + relativeTolerance * abs(Double(analytic[i])),
                                 "\(name)[\(i)]: finite difference \(numeric) vs analytic \(analytic[i])", file: file, line: line)
    }
    XCTAssertTrue(worst.isFinite, "\(name): non-finite gradient error", file: file, line: line)
}

/// Σ w·y in Double: the scalar whose gradient w.r.t. y is w.
func weightedSum(_ y: [Float], _ w: [Float]) -> Double {
    var s = 0.0
    for i in y.indices { s += Double(y[i]) * Double(w[i]) }
    return s
}

extension Array where Element == Float {
    /// Runs `body` with a mutable pointer to a copy of the array and returns the copy.
    func mutated(_ body: (UnsafeMutablePointer<Float>) -> Void) -> [Float] {
        var copy = self
        copy.withUnsafeMutableBufferPointer { body($0.baseAddress!) }
        return copy
    }
}
