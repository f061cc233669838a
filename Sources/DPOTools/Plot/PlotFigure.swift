import Foundation
import Training

// MARK: - What a figure holds

/// An RGB colour.
public struct PlotColor: Hashable, Sendable {
    public var red: UInt8, green: UInt8, blue: UInt8

    public init(red: UInt8, green: UInt8, blue: UInt8) {
        self.red = red
        self.green = green
        self.blue = blue
    }

    /// This colour mixed with white; `amount` 0 = unchanged, 1 = white.
    public func tinted(_ amount: Double) -> PlotColor {
        func mix(_ channel: UInt8) -> UInt8 { UInt8((Double(channel) + (255 - Double(channel)) * amount).rounded()) }
        return PlotColor(red: mix(red), green: mix(green), blue: mix(blue))
    }

    /// `#rrggbb`.
    public var hex: String { String(format: "#%02x%02x%02x", red, green, blue) }

    public static let white = PlotColor(red: 255, green: 255, blue: 255)
    public static let black = PlotColor(red: 0, green: 0, blue: 0)
    public static let axis = PlotColor(red: 64, green: 64, blue: 64)
    public static let grid = PlotColor(red: 225, green: 225, blue: 225)
    public static let mutedText = PlotColor(red: 110, green: 110, blue: 110)

    /// Eight well-separated line colours; series `i` uses `series[i % 8]`.
    public static let series: [PlotColor] = [
        PlotColor(red: 31, green: 119, blue: 180), PlotColor(red: 255, green: 127, blue: 14),
        PlotColor(red: 44, green: 160, blue: 44), PlotColor(red: 214, green: 39, blue: 40),
        PlotColor(red: 148, green: 103, blue: 189), PlotColor(red: 140, green: 86, blue: 75),
        PlotColor(red: 227, green: 119, blue: 194), PlotColor(red: 127, green: 127, blue: 127),
    ]
}

/// One named line: `y[i]` against `x[i]`. Non-finite points are skipped (the line breaks there).
public struct PlotSeries: Sendable {
    public var name: String
    public var x: [Double]
    public var y: [Double]
    /// Index into `PlotColor.series`; nil = the series' position in its panel.
    public var colorIndex: Int?
    public var dashed: Bool
    /// Drawn thin in a pale tint of its colour and left out of the legend: the raw values
    /// behind a smoothed line.
    public var faded: Bool

    public init(name: String, x: [Double], y: [Double], colorIndex: Int? = nil, dashed: Bool = false, faded: Bool = false) {
        self.name = name
        self.x = x
        self.y = y
        self.colorIndex = colorIndex
        self.dashed = dashed
        self.faded = faded
    }
}

/// One chart: axes with nice ticks, its series and a legend.
public struct PlotPanel: Sendable {
    public var title: String
    public var xLabel: String
    public var series: [PlotSeries]

    public init(title: String, xLabel: String = "step", series: [PlotSeries]) {
        self.title = title
        self.xLabel = xLabel
        self.series = series
    }
}

/// Panels on a grid, `columns` wide, row by row.
public struct PlotFigure: Sendable {
    public var title: String?
    public var panels: [PlotPanel]
    public var columns: Int
    /// Size of one panel's plotting area in pixels (SVG user units).
    public var plotWidth: Double
    public var plotHeight: Double

    public init(title: String? = nil, panels: [PlotPanel], columns: Int = 2,
                plotWidth: Double = 470, plotHeight: Double = 260) {
        self.title = title
        self.panels = panels
        self.columns = max(1, min(columns, max(1, panels.count)))
        self.plotWidth = plotWidth
        self.plotHeight = plotHeight
    }
}

// MARK: - Writing files

/// Why a plot could not be written.
public struct PlotError: Error, LocalizedError, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
    public var errorDescription: String? { message }
}

extension PlotFigure {
    /// The figure as SVG text.
    public func svg() -> String { PlotSVG.render(PlotLayout(figure: self)) }

    /// The figure as PNG bytes.
    public func png() -> [UInt8] {
        let layout = PlotLayout(figure: self)
        let canvas = RasterCanvas(width: Int(layout.width.rounded(.up)), height: Int(layout.height.rounded(.up)),
                                  background: .white)
        canvas.draw(layout.commands)
        return PNGEncoder.encode(canvas)
    }

    /// Writes `.svg` or `.png` according to the extension of `url`, creating its directory.
    public func write(to url: URL) throws {
        let bytes: [UInt8]
        switch url.pathExtension.lowercased() {
        case "svg": bytes = Array(svg().utf8)
        case "png": bytes = png()
        default:
            throw PlotError("cannot write \(url.path): the plot file must end in .svg or .png")
        }
        do {
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(bytes).write(to: url, options: .atomic)
        } catch {
            throw PlotError("cannot write \(url.path): \(error.localizedDescription); check that the directory is writable")
        }
    }
}
