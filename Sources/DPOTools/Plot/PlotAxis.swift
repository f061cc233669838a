import Foundation
import Training

/// An axis range with "nice" tick values (1, 2 or 5 times a power of ten) that cover the data.
public struct PlotAxis: Sendable, Equatable {
    /// The axis never reaches beyond +-this: a wider span (a diverged run logs 1e308) would
    /// overflow `upper - lower` to infinity and every coordinate to NaN. Values beyond are
    /// drawn at the edge (`fraction` clamps), so they stay visible instead of vanishing.
    public static let largestMagnitude = 1e300

    public var lower: Double
    public var upper: Double
    public var step: Double
    public var ticks: [Double]

    /// Ticks covering `[minimum, maximum]` with about `targetTicks` values.
    /// A degenerate range (one value, or no data) is widened so the axis still has ticks.
    public init(minimum: Double, maximum: Double, targetTicks: Int = 6) {
        var low = minimum, high = maximum
        if !low.isFinite || !high.isFinite { low = 0; high = 1 }
        if high < low { swap(&low, &high) }
        low = min(max(low, -Self.largestMagnitude), Self.largestMagnitude)
        high = min(max(high, -Self.largestMagnitude), Self.largestMagnitude)
        if high - low < max(abs(high), abs(low), 1e-300) * 1e-12 {
            let pad = low == 0 ? 1 : abs(low) * 0.1
            low -= pad
            high += pad
        }
        let step = Self.niceNumber((high - low) / Double(max(1, targetTicks - 1)), round: true)
        let firstIndex = (low / step).rounded(.down), lastIndex = (high / step).rounded(.up)
        lower = firstIndex * step
        upper = lastIndex * step
        self.step = step
        // Ticks are integers times the step, so labels do not drift (0.30000000000000004).
        ticks = (0...Int(lastIndex - firstIndex)).map { index in (firstIndex + Double(index)) * step }
    }

    /// 1, 2, 5 or 10 times a power of ten near `value`, rounded or taken as the ceiling.
    static func niceNumber(_ value: Double, round: Bool) -> Double {
        let exponent = (log10(value)).rounded(.down)
        let fraction = value / pow(10, exponent)
        let nice: Double
        if round {
            nice = fraction < 1.5 ? 1 : fraction < 3 ? 2 : fraction < 7 ? 5 : 10
        } else {
            nice = fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 5 ? 5 : 10
        }
        return nice * pow(10, exponent)
    }

    /// Labels for the ticks with just enough decimals for the step (`0.25` -> 2), or
    /// scientific notation for very large or small steps.
    public var tickLabels: [String] { ticks.map(label) }

    public func label(_ value: Double) -> String {
        let magnitude = max(abs(lower), abs(upper))
        if step < 1e-4 || magnitude >= 1e6 {
            return value == 0 ? "0" : String(format: "%.1e", value).replacingOccurrences(of: "e-0", with: "e-")
                .replacingOccurrences(of: "e+0", with: "e")
                .replacingOccurrences(of: "e+", with: "e")
        }
        let decimals = max(0, Int((-log10(step)).rounded(.up)))
        let text = String(format: "%.\(decimals)f", value)
        return text == "-0" || text.hasPrefix("-0.") && Double(text) == 0 ? String(text.dropFirst()) : text
    }

    /// Position of `value` along the axis, clamped to `[0, 1]` (values beyond the axis, which
    /// only the `largestMagnitude` cut leaves, are drawn at its edge).
    public func fraction(_ value: Double) -> Double { min(max((value - lower) / (upper - lower), 0), 1) }
}
