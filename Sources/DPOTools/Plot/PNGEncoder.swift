import Training
/// Encodes a raster canvas as PNG: 8-bit palette when the image has at most 256 colours
/// (plots do), else 8-bit RGB; one zlib stream compressed with fixed-Huffman deflate and
/// greedy LZ77 matching; CRC-32 per chunk.
public enum PNGEncoder {
    public static let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]

    public static func encode(_ canvas: RasterCanvas) -> [UInt8] {
        let width = canvas.width, height = canvas.height, pixels = canvas.pixels
        // MARK: Palette if it fits
        var paletteIndex: [UInt32: UInt8] = [:]
        var palette: [UInt8] = []
        var fitsPalette = true
        for offset in stride(from: 0, to: pixels.count, by: 3) {
            let key = UInt32(pixels[offset]) << 16 | UInt32(pixels[offset + 1]) << 8 | UInt32(pixels[offset + 2])
            if paletteIndex[key] != nil { continue }
            if paletteIndex.count == 256 { fitsPalette = false; break }
            paletteIndex[key] = UInt8(paletteIndex.count)
            palette += [pixels[offset], pixels[offset + 1], pixels[offset + 2]]
        }

        // MARK: Filtered scanlines (filter type 0 = none)
        var scanlines: [UInt8] = []
        scanlines.reserveCapacity(height * (1 + width * (fitsPalette ? 1 : 3)))
        for row in 0..<height {
            scanlines.append(0)
            let rowStart = row * width * 3
            if fitsPalette {
                for column in 0..<width {
                    let offset = rowStart + column * 3
                    let key = UInt32(pixels[offset]) << 16 | UInt32(pixels[offset + 1]) << 8 | UInt32(pixels[offset + 2])
                    scanlines.append(paletteIndex[key] ?? 0)
                }
            } else {
                scanlines += pixels[rowStart..<rowStart + width * 3]
            }
        }

        // MARK: Chunks
        var header: [UInt8] = []
        appendBigEndian(UInt32(width), to: &header)
        appendBigEndian(UInt32(height), to: &header)
        header += [8, fitsPalette ? 3 : 2, 0, 0, 0]  // bit depth, colour type, compression, filter, interlace
        var png = signature
        appendChunk("IHDR", header, to: &png)
        if fitsPalette { appendChunk("PLTE", palette, to: &png) }
        appendChunk("IDAT", Zlib.compress(scanlines), to: &png)
        appendChunk("IEND", [], to: &png)
        return png
    }

    static func appendChunk(_ type: String, _ data: [UInt8], to png: inout [UInt8]) {
        appendBigEndian(UInt32(data.count), to: &png)
        let typeAndData = Array(type.utf8) + data
        png += typeAndData
        appendBigEndian(CRC32.checksum(typeAndData), to: &png)
    }

    static func appendBigEndian(_ value: UInt32, to bytes: inout [UInt8]) {
        bytes += [UInt8(value >> 24), UInt8((value >> 16) & 0xFF), UInt8((value >> 8) & 0xFF), UInt8(value & 0xFF)]
    }
}

// MARK: - Checksums

/// CRC-32 (ISO-HDLC, reflected polynomial 0xEDB88320), as PNG chunks use it.
public enum CRC32 {
    static let table: [UInt32] = (0..<256).map { index -> UInt32 in
        var crc = UInt32(index)
        for _ in 0..<8 { crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        return crc
    }

    public static func checksum<Bytes: Sequence>(_ bytes: Bytes) -> UInt32 where Bytes.Element == UInt8 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes { crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
        return crc ^ 0xFFFF_FFFF
    }
}

/// Adler-32, the zlib stream checksum.
public enum Adler32 {
    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        var a: UInt32 = 1, b: UInt32 = 0
        var index = 0
        while index < bytes.count {
            // 5552 bytes is the most that can be summed before UInt32 can overflow.
            let end = min(bytes.count, index + 5552)
            while index < end {
                a += UInt32(bytes[index])
                b += a
                index += 1
            }
            a %= 65521
            b %= 65521
        }
        return b << 16 | a
    }
}

// MARK: - zlib / deflate

/// A zlib stream (RFC 1950) holding one fixed-Huffman deflate block (RFC 1951).
public enum Zlib {
    public static func compress(_ input: [UInt8]) -> [UInt8] {
        var writer = DeflateBitWriter()
        writer.bytes = [0x78, 0x01]          // deflate, 32 KiB window; (0x78 * 256 + 0x01) % 31 == 0
        writer.writeBits(1, count: 1)        // BFINAL
        writer.writeBits(1, count: 2)        // BTYPE = 01, fixed Huffman codes
        let windowSize = 32768, maxMatch = 258, minMatch = 3, maxChain = 32
        var head = [Int](repeating: -1, count: 1 << 15)
        var previous = [Int](repeating: -1, count: input.count)
        func hash(_ position: Int) -> Int {
            (Int(input[position]) << 10 ^ Int(input[position + 1]) << 5 ^ Int(input[position + 2])) & 0x7FFF
        }
        func insert(_ position: Int) {
            guard position + minMatch <= input.count else { return }
            let key = hash(position)
            previous[position] = head[key]
            head[key] = position
        }
        var position = 0
        while position < input.count {
            var bestLength = 0, bestDistance = 0
            if position + minMatch <= input.count {
                var candidate = head[hash(position)]
                var chain = 0
                let limit = min(maxMatch, input.count - position)
                while candidate >= 0, position - candidate <= windowSize, chain < maxChain {
                    var length = 0
                    while length < limit, input[candidate + length] == input[position + length] { length += 1 }
                    if length > bestLength {
                        bestLength = length
                        bestDistance = position - candidate
                        if length == limit { break }
                    }
                    candidate = previous[candidate]
                    chain += 1
                }
            }
            if bestLength >= minMatch {
                writer.writeLength(bestLength)
                writer.writeDistance(bestDistance)
                for offset in 0..<bestLength { insert(position + offset) }
                position += bestLength
            } else {
                writer.writeLiteral(Int(input[position]))
                insert(position)
                position += 1
            }
        }
        writer.writeLiteral(256)             // end of block
        writer.flush()
        let adler = Adler32.checksum(input)
        writer.bytes += [UInt8(adler >> 24), UInt8((adler >> 16) & 0xFF), UInt8((adler >> 8) & 0xFF), UInt8(adler & 0xFF)]
        return writer.bytes
    }
}

/// Writes deflate bits: values least-significant bit first, Huffman codes most-significant first.
struct DeflateBitWriter {
    var bytes: [UInt8] = []
    private var buffer: UInt64 = 0
    private var bufferCount = 0

    static let lengthBases = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258]
    static let lengthExtraBits = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0]
    static let distanceBases = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577]
    static let distanceExtraBits = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13]

    mutating func writeBits(_ value: Int, count: Int) {
        buffer |= UInt64(value) << UInt64(bufferCount)
        bufferCount += count
        while bufferCount >= 8 {
            bytes.append(UInt8(buffer & 0xFF))
            buffer >>= 8
            bufferCount -= 8
        }
    }

    mutating func writeHuffman(_ code: Int, length: Int) {
        var reversed = 0
        for bit in 0..<length { reversed |= ((code >> bit) & 1) << (length - 1 - bit) }
        writeBits(reversed, count: length)
    }

    /// A literal byte (0-255) or end-of-block (256), or a length symbol (257-287).
    mutating func writeLiteral(_ symbol: Int) {
        switch symbol {
        case 0...143: writeHuffman(0x30 + symbol, length: 8)
        case 144...255: writeHuffman(0x190 + symbol - 144, length: 9)
        case 256...279: writeHuffman(symbol - 256, length: 7)
        default: writeHuffman(0xC0 + symbol - 280, length: 8)
        }
    }

    mutating func writeLength(_ length: Int) {
        var code = Self.lengthBases.count - 1
        while Self.lengthBases[code] > length { code -= 1 }
        writeLiteral(257 + code)
        writeBits(length - Self.lengthBases[code], count: Self.lengthExtraBits[code])
    }

    mutating func writeDistance(_ distance: Int) {
        var code = Self.distanceBases.count - 1
        while Self.distanceBases[code] > distance { code -= 1 }
        writeHuffman(code, length: 5)
        writeBits(distance - Self.distanceBases[code], count: Self.distanceExtraBits[code])
    }

    mutating func flush() {
        if bufferCount > 0 { bytes.append(UInt8(buffer & 0xFF)) }
        buffer = 0
        bufferCount = 0
    }
}
