import Foundation
import Training

// MARK: - Drawing commands

/// A point in figure pixels, origin top-left, y down.
public struct PlotPoint: Sendable, Equatable {
    public var x: Double, y: Double
    public init(x: Double, y: Double) { self.x = x; self.y = y }
}

/// How text is placed horizontally relative to its x.
public enum PlotTextAnchor: Sendable { case start, middle, end }

/// One thing to draw; both the SVG writer and the raster canvas render the same list.
public enum PlotDrawCommand: Sendable {
    case rectangle(x: Double, y: Double, width: Double, height: Double, fill: PlotColor?, stroke: PlotColor?)
    case polyline(points: [PlotPoint], color: PlotColor, lineWidth: Double, dashed: Bool)
    /// `top` is the top of the glyph box; text is `PlotFont.glyphHeight * scale` tall and
    /// `PlotFont.advance * scale` per character wide.
    case text(String, x: Double, top: Double, anchor: PlotTextAnchor, scale: Int, color: PlotColor)
}

// MARK: - Layout

/// Places panels, axes, ticks, lines and legends of a figure as drawing commands.
///
/// Text sizes come from the bitmap font's metrics (`PlotFont`), so the SVG and the PNG
/// share one layout.
public struct PlotLayout {
    public private(set) var width: Double = 0
    public private(set) var height: Double = 0
    public private(set) var commands: [PlotDrawCommand] = []

    static let textScale = 2
    static let titleScale = 3
    static let margin = 16.0
    static let tickLength = 5.0
    static let legendSwatch = 30.0

    public init(figure: PlotFigure) {
        let textScale = Self.textScale
        let lineHeight = Double(PlotFont.glyphHeight * textScale)
        let charWidth = Double(PlotFont.advance * textScale)
        let figureTitleHeight = figure.title == nil ? 0 : Double(PlotFont.glyphHeight * Self.titleScale) + 2 * Self.margin

        // The widest y tick label over all panels sets one common left margin.
        let axes = figure.panels.map(Self.axes)
        let widestLabel = axes.flatMap { $0.y.tickLabels }.map(\.count).max() ?? 1
        let leftMargin = Self.margin + Double(widestLabel) * charWidth + Self.tickLength + 6
        // The last x tick label is centred on the right edge: leave room for half of it.
        let widestXLabel = axes.flatMap { $0.x.tickLabels }.map(\.count).max() ?? 1
        let rightMargin = Self.margin + Double(widestXLabel) * charWidth / 2
        let panelWidth = leftMargin + figure.plotWidth + rightMargin

        // Legends wrap inside the panel width; the tallest legend of a grid row sets that row's height.
        let legendRows = figure.panels.map { Self.legendRows($0, width: panelWidth - 2 * Self.margin, charWidth: charWidth) }
        let titleBand = lineHeight + 14
        let xAxisBand = Self.tickLength + 6 + lineHeight + 8 + lineHeight + 12
        let gridRows = max(1, (figure.panels.count + figure.columns - 1) / figure.columns)
        var rowTops = [figureTitleHeight]
        for gridRow in 0..<gridRows {
            let members = legendRows.indices.filter { $0 / figure.columns == gridRow }
            let legendLines = members.map { legendRows[$0].count }.max() ?? 0
            let rowHeight = titleBand + figure.plotHeight + xAxisBand + Double(legendLines) * (lineHeight + 8) + Self.margin
            rowTops.append(rowTops[gridRow] + rowHeight)
        }

        width = Double(figure.columns) * panelWidth
        height = rowTops[gridRows]
        commands.append(.rectangle(x: 0, y: 0, width: width, height: height, fill: .white, stroke: nil))
        if let title = figure.title {
            commands.append(.text(title, x: width / 2, top: Self.margin, anchor: .middle, scale: Self.titleScale, color: .black))
        }

        for (index, panel) in figure.panels.enumerated() {
            let originX = Double(index % figure.columns) * panelWidth
            let originY = rowTops[index / figure.columns]
            let plotLeft = originX + leftMargin
            let plotTop = originY + titleBand
            layoutPanel(panel, axes: axes[index], legendRows: legendRows[index],
                        plotLeft: plotLeft, plotTop: plotTop, plotWidth: figure.plotWidth,
                        plotHeight: figure.plotHeight, originX: originX, lineHeight: lineHeight)
        }
    }

    // MARK: - One panel

    private mutating func layoutPanel(_ panel: PlotPanel, axes: (x: PlotAxis, y: PlotAxis),
                                      legendRows: [[Int]], plotLeft: Double, plotTop: Double,
                                      plotWidth: Double, plotHeight: Double, originX: Double,
                                      lineHeight: Double) {
        let scale = Self.textScale
        let capHeight = Double(PlotFont.capHeight * scale)
        let plotRight = plotLeft + plotWidth, plotBottom = plotTop + plotHeight
        func pixelX(_ value: Double) -> Double { plotLeft + axes.x.fraction(value) * plotWidth }
        func pixelY(_ value: Double) -> Double { plotBottom - axes.y.fraction(value) * plotHeight }

        let maxTitleCharacters = Int((plotWidth + 2 * Self.margin) / Double(PlotFont.advance * scale))
        let title = panel.title.count <= maxTitleCharacters
            ? panel.title : String(panel.title.prefix(max(1, maxTitleCharacters - 3))) + "..."
        commands.append(.text(title, x: plotLeft + plotWidth / 2, top: plotTop - lineHeight - 10,
                              anchor: .middle, scale: scale, color: .black))

        // Grid and ticks.
        for (value, label) in zip(axes.y.ticks, axes.y.tickLabels) {
            let y = pixelY(value).rounded()
            commands.append(.polyline(points: [PlotPoint(x: plotLeft, y: y), PlotPoint(x: plotRight, y: y)],
                                      color: .grid, lineWidth: 1, dashed: false))
            commands.append(.polyline(points: [PlotPoint(x: plotLeft - Self.tickLength, y: y), PlotPoint(x: plotLeft, y: y)],
                                      color: .axis, lineWidth: 1, dashed: false))
            commands.append(.text(label, x: plotLeft - Self.tickLength - 4, top: y - capHeight / 2,
                                  anchor: .end, scale: scale, color: .axis))
        }
        for (value, label) in zip(axes.x.ticks, axes.x.tickLabels) {
            let x = pixelX(value).rounded()
            commands.append(.polyline(points: [PlotPoint(x: x, y: plotTop), PlotPoint(x: x, y: plotBottom)],
                                      color: .grid, lineWidth: 1, dashed: false))
            commands.append(.polyline(points: [PlotPoint(x: x, y: plotBottom), PlotPoint(x: x, y: plotBottom + Self.tickLength)],
                                      color: .axis, lineWidth: 1, dashed: false))
            commands.append(.text(label, x: x, top: plotBottom + Self.tickLength + 6,
                                  anchor: .middle, scale: scale, color: .axis))
        }
        let xLabelTop = plotBottom + Self.tickLength + 6 + lineHeight + 8
        commands.append(.text(panel.xLabel, x: plotLeft + plotWidth / 2, top: xLabelTop,
                              anchor: .middle, scale: scale, color: .mutedText))

        // Series.
        if panel.series.allSatisfy({ Self.finitePoints($0).isEmpty }) {
            commands.append(.text("no data", x: plotLeft + plotWidth / 2, top: plotTop + plotHeight / 2 - lineHeight / 2,
                                  anchor: .middle, scale: scale, color: .mutedText))
        }
        // Faded (raw) series first, so the lines that matter are drawn over them.
        let drawingOrder = panel.series.indices.filter { panel.series[$0].faded }
            + panel.series.indices.filter { !panel.series[$0].faded }
        for index in drawingOrder {
            let series = panel.series[index]
            let color = series.faded ? Self.color(series, index: index).tinted(0.65) : Self.color(series, index: index)
            for run in Self.finiteRuns(series) {
                let points = Self.decimated(run.map { PlotPoint(x: pixelX($0.x), y: pixelY($0.y)) })
                commands.append(.polyline(points: points.count == 1 ? [points[0], points[0]] : points,
                                          color: color, lineWidth: series.faded ? 1 : 2, dashed: series.dashed))
            }
        }
        commands.append(.rectangle(x: plotLeft, y: plotTop, width: plotWidth, height: plotHeight, fill: nil, stroke: .axis))

        // Legend.
        let charWidth = Double(PlotFont.advance * scale)
        var legendTop = xLabelTop + lineHeight + 12
        for row in legendRows {
            var x = originX + Self.margin
            for seriesIndex in row {
                let series = panel.series[seriesIndex]
                let middle = legendTop + capHeight / 2
                commands.append(.polyline(points: [PlotPoint(x: x, y: middle), PlotPoint(x: x + Self.legendSwatch - 8, y: middle)],
                                          color: Self.color(series, index: seriesIndex), lineWidth: 2, dashed: series.dashed))
                commands.append(.text(series.name, x: x + Self.legendSwatch, top: legendTop, anchor: .start,
                                      scale: scale, color: .black))
                x += Self.legendEntryWidth(series, charWidth: charWidth)
            }
            legendTop += lineHeight + 8
        }
    }

    // MARK: - Helpers

    static func color(_ series: PlotSeries, index: Int) -> PlotColor {
        PlotColor.series[((series.colorIndex ?? index) % PlotColor.series.count + PlotColor.series.count) % PlotColor.series.count]
    }

    static func finitePoints(_ series: PlotSeries) -> [PlotPoint] {
        zip(series.x, series.y).compactMap { x, y in x.isFinite && y.isFinite ? PlotPoint(x: x, y: y) : nil }
    }

    /// Consecutive finite points; a NaN or infinity breaks the line.
    static func finiteRuns(_ series: PlotSeries) -> [[PlotPoint]] {
        var runs: [[PlotPoint]] = [], current: [PlotPoint] = []
        for (x, y) in zip(series.x, series.y) {
            if x.isFinite && y.isFinite {
                current.append(PlotPoint(x: x, y: y))
            } else if !current.isEmpty {
                runs.append(current)
                current = []
            }
        }
        if !current.isEmpty { runs.append(current) }
        return runs
    }

    /// Long lines keep, per pixel column, their first, lowest, highest and last point (in
    /// order), so the drawn envelope is unchanged while a 100k-step SVG stays small.
    static func decimated(_ points: [PlotPoint]) -> [PlotPoint] {
        guard let firstColumn = points.first.map({ Int($0.x.rounded(.down)) }),
              let lastColumn = points.last.map({ Int($0.x.rounded(.down)) }),
              points.count > 4 * max(1, abs(lastColumn - firstColumn) + 1) else { return points }
        var result: [PlotPoint] = []
        var start = 0
        while start < points.count {
            let column = Int(points[start].x.rounded(.down))
            var end = start
            while end < points.count, Int(points[end].x.rounded(.down)) == column { end += 1 }
            var lowest = start, highest = start
            for index in start..<end {
                if points[index].y < points[lowest].y { lowest = index }
                if points[index].y > points[highest].y { highest = index }
            }
            for index in Set([start, lowest, highest, end - 1]).sorted() { result.append(points[index]) }
            start = end
        }
        return result
    }

    static func axes(_ panel: PlotPanel) -> (x: PlotAxis, y: PlotAxis) {
        let points = panel.series.flatMap(finitePoints)
        guard let first = points.first else {
            return (PlotAxis(minimum: 0, maximum: 1), PlotAxis(minimum: 0, maximum: 1))
        }
        var minX = first.x, maxX = first.x, minY = first.y, maxY = first.y
        for point in points {
            minX = min(minX, point.x); maxX = max(maxX, point.x)
            minY = min(minY, point.y); maxY = max(maxY, point.y)
        }
        return (PlotAxis(minimum: minX, maximum: maxX, targetTicks: 6), PlotAxis(minimum: minY, maximum: maxY, targetTicks: 5))
    }

    static func legendEntryWidth(_ series: PlotSeries, charWidth: Double) -> Double {
        legendSwatch + Double(series.name.count) * charWidth + 18
    }

    /// Series indices per legend row, wrapped to `width`.
    static func legendRows(_ panel: PlotPanel, width: Double, charWidth: Double) -> [[Int]] {
        var rows: [[Int]] = [], current: [Int] = [], used = 0.0
        for (index, series) in panel.series.enumerated() where !series.faded {
            let entry = legendEntryWidth(series, charWidth: charWidth)
            if !current.isEmpty, used + entry > width {
                rows.append(current)
                current = []
                used = 0
            }
            current.append(index)
            used += entry
        }
        if !current.isEmpty { rows.append(current) }
        return rows
    }
}
