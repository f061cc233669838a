import Foundation
import Training

/// Writes a laid-out figure as SVG text by hand.
///
/// Text uses a monospace font sized so one character is as wide as the bitmap font's advance
/// (a monospace glyph is about 0.6 em wide), so the layout computed for the PNG fits here too.
public enum PlotSVG {
    public static func render(_ layout: PlotLayout) -> String {
        var svg = """
        <?xml version="1.0" encoding="UTF-8"?>
        <svg xmlns="http://www.w3.org/2000/svg" width="\(number(layout.width))" height="\(number(layout.height))" \
        viewBox="0 0 \(number(layout.width)) \(number(layout.height))">

        """
        for command in layout.commands {
            switch command {
            case let .rectangle(x, y, width, height, fill, stroke):
                svg += "<rect x=\"\(number(x))\" y=\"\(number(y))\" width=\"\(number(width))\" height=\"\(number(height))\""
                svg += " fill=\"\(fill?.hex ?? "none")\""
                if let stroke { svg += " stroke=\"\(stroke.hex)\" stroke-width=\"1\"" }
                svg += "/>\n"
            case let .polyline(points, color, lineWidth, dashed):
                let coordinates = points.map { "\(number($0.x)),\(number($0.y))" }.joined(separator: " ")
                svg += "<polyline points=\"\(coordinates)\" fill=\"none\" stroke=\"\(color.hex)\" stroke-width=\"\(number(lineWidth))\""
                svg += " stroke-linejoin=\"round\" stroke-linecap=\"round\""
                if dashed { svg += " stroke-dasharray=\"6,4\"" }
                svg += "/>\n"
            case let .text(text, x, top, anchor, scale, color):
                let fontSize = Double(PlotFont.advance * scale) / 0.6
                let baseline = top + Double(PlotFont.capHeight * scale)
                let anchorName = anchor == .start ? "start" : anchor == .middle ? "middle" : "end"
                svg += "<text x=\"\(number(x))\" y=\"\(number(baseline))\" font-family=\"DejaVu Sans Mono, Menlo, Consolas, monospace\""
                svg += " font-size=\"\(number(fontSize))\" text-anchor=\"\(anchorName)\" fill=\"\(color.hex)\">"
                svg += escape(text) + "</text>\n"
            }
        }
        return svg + "</svg>\n"
    }

    /// Up to two decimals, no trailing zeros.
    static func number(_ value: Double) -> String {
        let rounded = (value * 100).rounded() / 100
        if rounded == rounded.rounded() { return String(Int(rounded)) }
        var text = String(format: "%.2f", rounded)
        while text.hasSuffix("0") { text.removeLast() }
        return text
    }

    /// XML text/attribute escaping.
    static func escape(_ text: String) -> String {
        var escaped = ""
        for character in text {
            switch character {
            case "&": escaped += "&amp;"
            case "<": escaped += "&lt;"
            case ">": escaped += "&gt;"
            case "\"": escaped += "&quot;"
            default: escaped.append(character)
            }
        }
        return escaped
    }
}
