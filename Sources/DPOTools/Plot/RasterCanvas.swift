import Training
/// An RGB pixel canvas that draws the layout's commands: rectangles, lines of a given width
/// (optionally dashed), and text in the built-in bitmap font. No anti-aliasing.
public final class RasterCanvas {
    public let width: Int
    public let height: Int
    /// Row-major RGB, 3 bytes per pixel.
    public private(set) var pixels: [UInt8]

    public init(width: Int, height: Int, background: PlotColor) {
        self.width = max(1, width)
        self.height = max(1, height)
        pixels = [UInt8](repeating: 0, count: self.width * self.height * 3)
        fill(x: 0, y: 0, width: self.width, height: self.height, color: background)
    }

    public func pixel(x: Int, y: Int) -> PlotColor {
        let offset = (y * width + x) * 3
        return PlotColor(red: pixels[offset], green: pixels[offset + 1], blue: pixels[offset + 2])
    }

    // MARK: - Primitives

    public func setPixel(x: Int, y: Int, color: PlotColor) {
        guard x >= 0, x < width, y >= 0, y < height else { return }
        let offset = (y * width + x) * 3
        pixels[offset] = color.red
        pixels[offset + 1] = color.green
        pixels[offset + 2] = color.blue
    }

    public func fill(x: Int, y: Int, width fillWidth: Int, height fillHeight: Int, color: PlotColor) {
        let left = max(0, x), right = min(width, x + fillWidth)
        let top = max(0, y), bottom = min(height, y + fillHeight)
        guard left < right, top < bottom else { return }
        for row in top..<bottom {
            for column in left..<right { setPixel(x: column, y: row, color: color) }
        }
    }

    /// A straight line `lineWidth` pixels thick; dashes are 6 pixels on, 4 off along the line.
    /// `dashOffset` carries the dash phase across the segments of a polyline.
    public func line(from start: PlotPoint, to end: PlotPoint, color: PlotColor, lineWidth: Int,
                     dashed: Bool, dashOffset: inout Double) {
        let dx = end.x - start.x, dy = end.y - start.y
        let length = (dx * dx + dy * dy).squareRoot()
        let steps = max(1, Int(length.rounded(.up)))
        let brushLow = -(lineWidth - 1) / 2, brushHigh = lineWidth / 2
        for index in 0...steps {
            let t = Double(index) / Double(steps)
            let along = dashOffset + t * length
            if dashed, along.truncatingRemainder(dividingBy: 10) >= 6 { continue }
            let x = Int((start.x + t * dx).rounded()), y = Int((start.y + t * dy).rounded())
            for offsetY in brushLow...brushHigh {
                for offsetX in brushLow...brushHigh { setPixel(x: x + offsetX, y: y + offsetY, color: color) }
            }
        }
        dashOffset += length
    }

    /// Text with its glyph box's top-left at (`x`, `top`), each font pixel drawn `scale` x `scale`.
    public func text(_ string: String, x: Int, top: Int, scale: Int, color: PlotColor) {
        for (index, character) in string.enumerated() {
            let left = x + index * PlotFont.advance * scale
            for row in 0..<PlotFont.glyphHeight {
                for column in 0..<PlotFont.glyphWidth where PlotFont.isSet(character, column: column, row: row) {
                    fill(x: left + column * scale, y: top + row * scale, width: scale, height: scale, color: color)
                }
            }
        }
    }

    // MARK: - Drawing a layout

    public func draw(_ commands: [PlotDrawCommand]) {
        for command in commands {
            switch command {
            case let .rectangle(x, y, rectangleWidth, rectangleHeight, fill, stroke):
                let left = Int(x.rounded()), top = Int(y.rounded())
                let right = Int((x + rectangleWidth).rounded()), bottom = Int((y + rectangleHeight).rounded())
                if let fill { self.fill(x: left, y: top, width: right - left, height: bottom - top, color: fill) }
                if let stroke {
                    self.fill(x: left, y: top, width: right - left + 1, height: 1, color: stroke)
                    self.fill(x: left, y: bottom, width: right - left + 1, height: 1, color: stroke)
                    self.fill(x: left, y: top, width: 1, height: bottom - top + 1, color: stroke)
                    self.fill(x: right, y: top, width: 1, height: bottom - top + 1, color: stroke)
                }
            case let .polyline(points, color, lineWidth, dashed):
                var dashOffset = 0.0
                for (start, end) in zip(points, points.dropFirst()) {
                    line(from: start, to: end, color: color, lineWidth: max(1, Int(lineWidth.rounded())),
                         dashed: dashed, dashOffset: &dashOffset)
                }
            case let .text(string, x, top, anchor, scale, color):
                let textWidth = Double(string.count * PlotFont.advance * scale - scale)
                let left: Double
                switch anchor {
                case .start: left = x
                case .middle: left = x - textWidth / 2
                case .end: left = x - textWidth
                }
                text(string, x: Int(left.rounded()), top: Int(top.rounded()), scale: scale, color: color)
            }
        }
    }
}
