import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import XCTest
@testable import DPOTools
@testable import Training

// MARK: - An independent PNG reader

/// Parses PNG chunks (checking every CRC-32 bit by bit) and inflates the zlib stream
/// (stored and fixed-Huffman blocks, which is what the encoder writes) without sharing code with it.
struct PNGFile {
    struct Failure: Error, CustomStringConvertible { let description: String }

    var width = 0, height = 0, bitDepth = 0, colorType = 0
    var chunkTypes: [String] = []
    var palette: [UInt8] = []
    var idat: [UInt8] = []

    static func crc32(_ bytes: ArraySlice<UInt8>) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        }
        return ~crc
    }

    static func bigEndian(_ bytes: [UInt8], _ offset: Int) -> UInt32 {
        UInt32(bytes[offset]) << 24 | UInt32(bytes[offset + 1]) << 16 | UInt32(bytes[offset + 2]) << 8 | UInt32(bytes[offset + 3])
    }

    init(_ bytes: [UInt8]) throws {
        guard bytes.prefix(8).elementsEqual([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) else {
            throw Failure(description: "bad PNG signature")
        }
        var offset = 8
        while offset < bytes.count {
            let length = Int(Self.bigEndian(bytes, offset))
            let type = String(decoding: bytes[offset + 4..<offset + 8], as: UTF8.self)
            let data = Array(bytes[offset + 8..<offset + 8 + length])
            let stored = Self.bigEndian(bytes, offset + 8 + length)
            guard stored == Self.crc32(bytes[offset + 4..<offset + 8 + length]) else {
                throw Failure(description: "CRC mismatch in \(type)")
            }
            chunkTypes.append(type)
            switch type {
            case "IHDR":
                width = Int(Self.bigEndian(data, 0))
                height = Int(Self.bigEndian(data, 4))
                bitDepth = Int(data[8])
                colorType = Int(data[9])
            case "PLTE": palette = data
            case "IDAT": idat += data
            default: break
            }
            offset += 12 + length
        }
    }

    // MARK: Inflate

    struct BitReader {
        let bytes: [UInt8]
        var position = 0, bit = 0
        mutating func read(_ count: Int) throws -> Int {
            var value = 0
            for index in 0..<count {
                guard position < bytes.count else { throw Failure(description: "deflate stream ends early") }
                value |= Int((bytes[position] >> UInt8(bit)) & 1) << index
                bit += 1
                if bit == 8 { bit = 0; position += 1 }
            }
            return value
        }
        /// A Huffman code of `count` bits, most significant bit first.
        mutating func readCode(_ count: Int) throws -> Int {
            var value = 0
            for _ in 0..<count { value = value << 1 | (try read(1)) }
            return value
        }
    }

    static func fixedLiteral(_ reader: inout BitReader) throws -> Int {
        var code = try reader.readCode(7)
        if code <= 0x17 { return 256 + code }
        code = code << 1 | (try reader.read(1))
        if code >= 0x30, code <= 0xBF { return code - 0x30 }
        if code >= 0xC0, code <= 0xC7 { return 280 + code - 0xC0 }
        code = code << 1 | (try reader.read(1))
        guard code >= 0x190, code <= 0x1FF else { throw Failure(description: "bad fixed code") }
        return 144 + code - 0x190
    }

    /// zlib-decompresses `stream`, checking the header and Adler-32.
    static func inflate(_ stream: [UInt8]) throws -> [UInt8] {
        guard stream.count >= 6, stream[0] & 0x0F == 8, (Int(stream[0]) << 8 | Int(stream[1])) % 31 == 0 else {
            throw Failure(description: "bad zlib header")
        }
        let lengthBase = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258]
        let lengthExtra = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0]
        let distanceBase = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577]
        let distanceExtra = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13]
        var reader = BitReader(bytes: Array(stream.dropFirst(2)))
        var output: [UInt8] = []
        var final = 0
        repeat {
            final = try reader.read(1)
            let type = try reader.read(2)
            switch type {
            case 0:
                if reader.bit != 0 { reader.bit = 0; reader.position += 1 }
                let length = try reader.read(16), complement = try reader.read(16)
                guard length ^ complement == 0xFFFF else { throw Failure(description: "bad stored length") }
                for _ in 0..<length { output.append(UInt8(try reader.read(8))) }
            case 1:
                while true {
                    let symbol = try fixedLiteral(&reader)
                    if symbol < 256 { output.append(UInt8(symbol)); continue }
                    if symbol == 256 { break }
                    let lengthCode = symbol - 257
                    let length = lengthBase[lengthCode] + (try reader.read(lengthExtra[lengthCode]))
                    let distanceCode = try reader.readCode(5)
                    let distance = distanceBase[distanceCode] + (try reader.read(distanceExtra[distanceCode]))
                    guard distance <= output.count else { throw Failure(description: "distance too far back") }
                    for _ in 0..<length { output.append(output[output.count - distance]) }
                }
            default: throw Failure(description: "block type \(type) is not written by the encoder")
            }
        } while final == 0
        if reader.bit != 0 { reader.position += 1 }
        let trailer = Array(reader.bytes[reader.position..<reader.position + 4])
        var a: UInt32 = 1, b: UInt32 = 0
        for byte in output { a = (a + UInt32(byte)) % 65521; b = (b + a) % 65521 }
        guard bigEndian(trailer, 0) == b << 16 | a else { throw Failure(description: "Adler-32 mismatch") }
        return output
    }
}

// MARK: - SVG structure

/// Collects element names and text of an SVG document while checking it is well-formed XML.
final class SVGCollector: NSObject, XMLParserDelegate {
    var elements: [String: Int] = [:]
    var texts: [String] = []
    var polylineStrokes: [String] = []
    private var currentText: String?

    func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                attributes: [String: String] = [:]) {
        elements[name, default: 0] += 1
        if name == "text" { currentText = "" }
        if name == "polyline", let stroke = attributes["stroke"] { polylineStrokes.append(stroke) }
    }

    func parser(_ parser: XMLParser, foundCharacters string: String) { currentText? += string }

    func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
        if name == "text", let currentText { texts.append(currentText) }
        currentText = nil
    }

    static func parse(_ svg: String) throws -> SVGCollector {
        let collector = SVGCollector()
        let parser = XMLParser(data: Data(svg.utf8))
        parser.delegate = collector
        guard parser.parse() else {
            throw PNGFile.Failure(description: "SVG is not well-formed XML: \(parser.parserError.map { "\($0)" } ?? "?")")
        }
        return collector
    }
}

// MARK: - Tests

final class PlotTests: XCTestCase {
    /// A run whose metrics move the way DPO's do.
    func makeRun(_ name: String, beta: Double, steps: Int = 30) -> MetricsPlot.Run {
        let records = (1...steps).map { step -> MetricsLog.Record in
            let margin = beta * (1 - exp(-Double(step) / 10))
            return MetricsLog.Record(step: step, metrics: [
                ("loss", log(1 + exp(-margin))), ("rewards/chosen", 0.2 * margin), ("rewards/rejected", -0.8 * margin),
                ("rewards/accuracies", min(1, 0.5 + Double(step) / 40)), ("rewards/margins", margin),
            ])
        }
        return MetricsPlot.Run(name: name, log: MetricsLog(records: records))
    }

    // MARK: Axes

    func testNiceTicksCoverTheDataWithRoundSteps() {
        let axis = PlotAxis(minimum: 0.013, maximum: 0.694, targetTicks: 5)
        XCTAssertEqual(axis.step, 0.2, accuracy: 1e-15)
        XCTAssertEqual(axis.tickLabels, ["0.0", "0.2", "0.4", "0.6", "0.8"])
        XCTAssertLessThanOrEqual(axis.lower, 0.013)
        XCTAssertGreaterThanOrEqual(axis.upper, 0.694)

        XCTAssertEqual(PlotAxis(minimum: 1, maximum: 200, targetTicks: 6).tickLabels, ["0", "50", "100", "150", "200"])
        XCTAssertEqual(PlotAxis(minimum: -1.07, maximum: 0.39, targetTicks: 5).tickLabels, ["-1.5", "-1.0", "-0.5", "0.0", "0.5"])
        XCTAssertEqual(PlotAxis(minimum: 0.1, maximum: 0.3, targetTicks: 5).tickLabels, ["0.10", "0.15", "0.20", "0.25", "0.30"])
        XCTAssertEqual(PlotAxis(minimum: 2e-6, maximum: 9e-6, targetTicks: 5).tickLabels.first, "2.0e-6")
    }

    func testDegenerateRangesStillGetTicks() {
        let constant = PlotAxis(minimum: 0.5, maximum: 0.5)
        XCTAssertLessThan(constant.lower, 0.5)
        XCTAssertGreaterThan(constant.upper, 0.5)
        XCTAssertGreaterThanOrEqual(constant.ticks.count, 2)
        let zero = PlotAxis(minimum: 0, maximum: 0)
        XCTAssertEqual(zero.lower, -1)
        XCTAssertEqual(zero.upper, 1)
        XCTAssertGreaterThanOrEqual(PlotAxis(minimum: .nan, maximum: .infinity).ticks.count, 2)
    }

    /// Finite values near the float64 limit (a diverged run logs 1e308) are drawn at the edge
    /// of the plot, not as NaN coordinates: the axis span would overflow to infinity.
    func testHugeFiniteValuesAreDrawnClippedToThePlot() throws {
        let panel = PlotPanel(title: "loss", series: [PlotSeries(name: "run", x: [1, 2, 3, 4], y: [0.5, 1e308, -1e308, 0.4])])
        let svg = PlotFigure(panels: [panel]).svg()
        XCTAssertFalse(svg.lowercased().contains("nan"), "NaN coordinates in the SVG")
        let lines: [[PlotPoint]] = PlotLayout(figure: PlotFigure(panels: [panel])).commands.compactMap {
            if case let .polyline(points, color, 2, _) = $0, color == PlotColor.series[0] { return points }
            return nil
        }
        let data = try XCTUnwrap(lines.first { $0.count == 4 }, "the 4 points are not one line: \(lines)")
        XCTAssertTrue(data.allSatisfy { $0.x.isFinite && $0.y.isFinite }, "\(data)")
        let ys = data.map(\.y)
        XCTAssertEqual(ys[1], ys.min(), "1e308 is drawn at the top edge")
        XCTAssertEqual(ys[2], ys.max(), "-1e308 is drawn at the bottom edge")
        XCTAssertLessThan(ys[1], ys[0])
        let axis = PlotAxis(minimum: -1e308, maximum: 1e308)
        XCTAssertTrue(axis.lower.isFinite && axis.upper.isFinite && (axis.upper - axis.lower).isFinite, "\(axis)")
        XCTAssertEqual(axis.fraction(1e308), 1)
        XCTAssertEqual(axis.fraction(-1e308), 0)
    }

    // MARK: SVG

    func testSVGForSeveralRunsIsWellFormedWithEverySeriesAndLegend() throws {
        let runs = [makeRun("beta0.1", beta: 0.1), makeRun("beta0.5", beta: 0.5)]
        let svg = MetricsPlot.figure(runs: runs, title: "beta sweep").svg()
        let collector = try SVGCollector.parse(svg)
        XCTAssertEqual(collector.elements["svg"], 1)
        for title in ["beta sweep", "loss", "rewards/chosen, rewards/rejected", "rewards/margins", "rewards/accuracies"] {
            XCTAssertTrue(collector.texts.contains(title), "missing title \(title)")
        }
        for legend in ["beta0.1", "beta0.5", "beta0.1 chosen", "beta0.1 rejected", "beta0.5 chosen", "beta0.5 rejected"] {
            XCTAssertTrue(collector.texts.contains(legend), "missing legend entry \(legend)")
        }
        XCTAssertTrue(collector.texts.contains("step"))
        // Each run has its own colour: 4 panels x (1 line + 1 legend swatch), chosen/rejected counted twice.
        let first = PlotColor.series[0].hex, second = PlotColor.series[1].hex
        XCTAssertEqual(collector.polylineStrokes.filter { $0 == first }.count, 10)
        XCTAssertEqual(collector.polylineStrokes.filter { $0 == second }.count, 10)
        XCTAssertEqual(svg.components(separatedBy: "stroke-dasharray").count - 1, 4, "rejected lines and their swatches are dashed")
        XCTAssertFalse(collector.texts.contains("eval_loss"), "no eval panels without eval metrics")
    }

    func testSVGEscapesNamesAndBreaksLinesAtNaN() throws {
        let panel = PlotPanel(title: "pi(rejected) <beta & co>", series: [
            PlotSeries(name: "a\"b", x: [0, 1, 2, 3, 4], y: [1, 2, .nan, 3, 4]),
        ])
        let svg = PlotFigure(panels: [panel]).svg()
        let collector = try SVGCollector.parse(svg)
        XCTAssertTrue(collector.texts.contains("pi(rejected) <beta & co>"))
        XCTAssertTrue(collector.texts.contains("a\"b"))
        let dataLines = PlotLayout(figure: PlotFigure(panels: [panel])).commands.filter {
            if case let .polyline(_, color, lineWidth, _) = $0 { return color == PlotColor.series[0] && lineWidth == 2 }
            return false
        }
        XCTAssertEqual(dataLines.count, 3, "two line pieces around the NaN plus the legend swatch")
    }

    func testEmptyPanelSaysNoData() throws {
        let collector = try SVGCollector.parse(PlotFigure(panels: [PlotPanel(title: "empty", series: [])]).svg())
        XCTAssertTrue(collector.texts.contains("no data"))
    }

    // MARK: PNG

    func testPNGForOneRunHasValidChunksAndDecompressesToTheImage() throws {
        let figure = MetricsPlot.figure(runs: [makeRun("dpo", beta: 0.3)])
        let layout = PlotLayout(figure: figure)
        let png = try PNGFile(figure.png())
        XCTAssertEqual(png.chunkTypes.first, "IHDR")
        XCTAssertEqual(png.chunkTypes.last, "IEND")
        XCTAssertEqual(png.width, Int(layout.width.rounded(.up)))
        XCTAssertEqual(png.height, Int(layout.height.rounded(.up)))
        XCTAssertEqual(png.bitDepth, 8)
        XCTAssertEqual(png.colorType, 3, "a plot has few colours, so it is palette-based")
        let scanlines = try PNGFile.inflate(png.idat)
        XCTAssertEqual(scanlines.count, png.height * (1 + png.width))

        // The decoded pixels equal the canvas: white background, the run's colour present.
        let canvas = RasterCanvas(width: png.width, height: png.height, background: .white)
        canvas.draw(layout.commands)
        var decoded: [UInt8] = []
        for row in 0..<png.height {
            XCTAssertEqual(scanlines[row * (png.width + 1)], 0, "filter type none")
            for column in 0..<png.width {
                let index = Int(scanlines[row * (png.width + 1) + 1 + column]) * 3
                decoded += png.palette[index..<index + 3]
            }
        }
        XCTAssertTrue(decoded == canvas.pixels, "PNG pixels differ from the canvas")
        XCTAssertEqual(canvas.pixel(x: 0, y: 0), .white)
        XCTAssertTrue(stride(from: 0, to: decoded.count, by: 3).contains { index in
            decoded[index] == PlotColor.series[0].red && decoded[index + 1] == PlotColor.series[0].green
                && decoded[index + 2] == PlotColor.series[0].blue
        })
    }

    func testPNGForSeveralRunsAndManyColoursFallsBackToRGB() throws {
        let runs = (0..<3).map { makeRun("run\($0)", beta: 0.1 * Double($0 + 1)) }
        let png = try PNGFile(MetricsPlot.figure(runs: runs, title: "three").png())
        XCTAssertEqual(png.colorType, 3)
        XCTAssertEqual(try PNGFile.inflate(png.idat).count, png.height * (1 + png.width))

        // 300 distinct colours do not fit a palette.
        let canvas = RasterCanvas(width: 300, height: 2, background: .white)
        for x in 0..<300 { canvas.setPixel(x: x, y: 0, color: PlotColor(red: UInt8(x % 256), green: UInt8(x / 256), blue: 7)) }
        let rgb = try PNGFile(PNGEncoder.encode(canvas))
        XCTAssertEqual(rgb.colorType, 2)
        let scanlines = try PNGFile.inflate(rgb.idat)
        XCTAssertEqual(scanlines.count, 2 * (1 + 300 * 3))
        XCTAssertEqual(Array(scanlines[1..<1 + 300 * 3]), Array(canvas.pixels[0..<300 * 3]))
    }

    func testZlibRoundTripsRepetitiveAndRandomData() throws {
        var random = SystemRandomNumberGenerator()
        let inputs: [[UInt8]] = [
            [], [42], Array(repeating: 7, count: 100_000),
            (0..<40_000).map { _ in UInt8.random(in: 0...3, using: &random) },
            (0..<5_000).map { _ in UInt8.random(in: 0...255, using: &random) },
        ]
        for input in inputs {
            XCTAssertEqual(try PNGFile.inflate(Zlib.compress(input)), input, "\(input.count) bytes")
        }
        XCTAssertEqual(Adler32.checksum(Array("Wikipedia".utf8)), 0x11E6_0398)
        XCTAssertEqual(CRC32.checksum(Array("123456789".utf8)), 0xCBF4_3926)
    }

    // MARK: Smoothing and long runs

    func testExponentialMovingAverageIsDebiasedAndSkipsNaN() {
        // w = 0.5: a1 = 0.5*2 = 1 -> 1/(1-0.5) = 2; a2 = 0.5*1 + 0.5*4 = 2.5 -> 2.5/0.75; NaN passes;
        // a3 = 0.5*2.5 + 0.5*6 = 4.25 -> 4.25/0.875.
        let smoothed = MetricsPlot.exponentialMovingAverage([2, 4, .nan, 6], weight: 0.5)
        XCTAssertEqual(smoothed[0], 2, accuracy: 1e-12)
        XCTAssertEqual(smoothed[1], 2.5 / 0.75, accuracy: 1e-12)
        XCTAssertTrue(smoothed[2].isNaN)
        XCTAssertEqual(smoothed[3], 4.25 / 0.875, accuracy: 1e-12)
        for value in MetricsPlot.exponentialMovingAverage([3, 3, 3], weight: 0.9) {
            XCTAssertEqual(value, 3, accuracy: 1e-12, "a constant stays constant: no pull toward 0 at the start")
        }
    }

    func testSmoothedFigureDrawsFadedRawLinesOutsideTheLegend() throws {
        let figure = MetricsPlot.figure(runs: [makeRun("dpo", beta: 0.3)], smoothing: 0.6)
        let loss = figure.panels[0]
        XCTAssertEqual(loss.series.map(\.faded), [true, false])
        XCTAssertEqual(loss.xLabel, "step (smoothed 0.6)")
        let collector = try SVGCollector.parse(figure.svg())
        XCTAssertFalse(collector.texts.contains { $0.hasSuffix("(raw)") }, "raw lines have no legend entry")
        XCTAssertTrue(collector.polylineStrokes.contains(PlotColor.series[0].tinted(0.65).hex))
    }

    func testLongRunsAreDecimatedPerPixelColumnKeepingTheEnvelope() {
        // 10,000 points over 100 pixel columns, alternating between 0 and 10.
        let points = (0..<10_000).map { PlotPoint(x: Double($0) / 100, y: $0 % 2 == 0 ? 0 : 10) }
        let kept = PlotLayout.decimated(points)
        XCTAssertLessThanOrEqual(kept.count, 4 * 100)
        XCTAssertEqual(kept.first, points.first)
        XCTAssertEqual(kept.last, points.last)
        XCTAssertEqual(kept.map(\.y).min(), 0)
        XCTAssertEqual(kept.map(\.y).max(), 10)
        XCTAssertTrue(zip(kept, kept.dropFirst()).allSatisfy { $0.x <= $1.x }, "order is kept")
        let sparse = (0..<50).map { PlotPoint(x: Double($0) * 3, y: Double($0 % 7)) }
        XCTAssertEqual(PlotLayout.decimated(sparse), sparse, "lines with few points per pixel are drawn as they are")
    }

    // MARK: Files

    func testRenderWritesSVGAndPNGFilesAndTrainingPlots() throws {
        let out = try makeMetricsTestDirectory(self)
        let sink = try JSONLMetricsSink(url: out.appendingPathComponent("metrics.jsonl"))
        for step in 1...5 { try sink.log(step: step, metrics: sampleTRLMetrics(step: step)) }
        try sink.close()
        let written = try MetricsPlot.writeTrainingPlots(outputDirectory: out)
        XCTAssertEqual(written.map(\.lastPathComponent), ["metrics.svg", "metrics.png"])
        let svg = try String(contentsOf: written[0], encoding: .utf8)
        XCTAssertTrue(try SVGCollector.parse(svg).texts.contains(out.lastPathComponent), "run named after its directory")
        XCTAssertEqual(try PNGFile(Array(try Data(contentsOf: written[1]))).chunkTypes, ["IHDR", "PLTE", "IDAT", "IEND"])

        let custom = out.appendingPathComponent("custom/pi_rejected.svg")
        try MetricsPlot.render(panels: [PlotPanel(title: "pi(rejected)", series: [
            PlotSeries(name: "DPO beta 0.1", x: [0, 1, 2], y: [0.5, 0.2, 0.05]),
            PlotSeries(name: "IPO beta 0.1", x: [0, 1, 2], y: [0.5, 0.35, 0.3]),
        ])], title: "DPO vs IPO", columns: 1, to: custom)
        XCTAssertTrue(try SVGCollector.parse(String(contentsOf: custom, encoding: .utf8)).texts.contains("IPO beta 0.1"))

        XCTAssertThrowsError(try MetricsPlot.render(runs: [], to: out.appendingPathComponent("x.jpg"))) { error in
            XCTAssertTrue("\(error)".contains("must end in .svg or .png"))
        }
    }

    func testRunIsNamedByLabelOrDirectory() throws {
        let out = try makeMetricsTestDirectory(self).appendingPathComponent("beta0.1")
        let sink = try JSONLMetricsSink(url: out.appendingPathComponent("metrics.jsonl"))
        try sink.log(step: 1, metrics: [("loss", 0.69)])
        try sink.close()
        XCTAssertEqual(try MetricsPlot.Run.read(out.appendingPathComponent("metrics.jsonl")).name, "beta0.1")
        XCTAssertEqual(try MetricsPlot.Run.read(out.appendingPathComponent("metrics.jsonl"), label: "dpo").name, "dpo")
    }
}
