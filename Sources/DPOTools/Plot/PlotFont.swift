import Training
/// A built-in 5x7 bitmap font for printable ASCII (plus one descender row for g, j, p, q, y),
/// drawn for this project, so PNG plots need no font files. Each glyph is 8 rows of 5 bits
/// (bit 4 = leftmost column), packed top row first into the high byte of a UInt64.
/// Characters outside ASCII 32-126 draw as `?`.
public enum PlotFont {
    public static let glyphWidth = 5
    public static let glyphHeight = 8
    /// Rows above the baseline (capital letters and digits); row 7 is the descender.
    public static let capHeight = 7
    /// Horizontal distance from one character to the next (glyph plus one column of space).
    public static let advance = 6

    /// Whether the pixel at (`column`, `row`) of `character`'s glyph is set.
    public static func isSet(_ character: Character, column: Int, row: Int) -> Bool {
        guard column >= 0, column < glyphWidth, row >= 0, row < glyphHeight else { return false }
        let bits = glyph(character)
        let rowBits = (bits >> UInt64(8 * (glyphHeight - 1 - row))) & 0xFF
        return rowBits & (1 << UInt64(glyphWidth - 1 - column)) != 0
    }

    static func glyph(_ character: Character) -> UInt64 {
        guard let ascii = character.asciiValue, ascii >= 32, ascii <= 126 else { return glyphs[Int(UInt8(ascii: "?")) - 32] }
        return glyphs[Int(ascii) - 32]
    }

    /// ASCII 32 (space) to 126 (`~`).
    static let glyphs: [UInt64] = [
        0x0000000000000000, 0x0404040404000400, 0x0A0A000000000000, 0x0A0A1F0A1F0A0A00, 0x040F140E051E0400, 0x1819020408130300,
        0x0C12140815120D00, 0x0404000000000000, 0x0204080808040200, 0x0804020202040800, 0x0004150E15040000, 0x0004041F04040000,
        0x000000000C040800, 0x0000001F00000000, 0x00000000000C0C00, 0x0001020408100000, 0x0E11131519110E00, 0x040C040404040E00,
        0x0E11010204081F00, 0x1F02040201110E00, 0x02060A121F020200, 0x1F101E0101110E00, 0x0608101E11110E00, 0x1F01020408080800,
        0x0E11110E11110E00, 0x0E11110F01020C00, 0x000C0C000C0C0000, 0x000C0C000C040800, 0x0204081008040200, 0x00001F001F000000,
        0x0804020102040800, 0x0E11010204000400, 0x0E11010D15150E00, 0x0E11111F11111100, 0x1E11111E11111E00, 0x0E11101010110E00,
        0x1C12111111121C00, 0x1F10101E10101F00, 0x1F10101E10101000, 0x0E11101711110F00, 0x1111111F11111100, 0x0E04040404040E00,
        0x0702020202120C00, 0x1112141814121100, 0x1010101010101F00, 0x111B151511111100, 0x1111191513111100, 0x0E11111111110E00,
        0x1E11111E10101000, 0x0E11111115120D00, 0x1E11111E14121100, 0x0F10100E01011E00, 0x1F04040404040400, 0x1111111111110E00,
        0x11111111110A0400, 0x1111111515150A00, 0x11110A040A111100, 0x11110A0404040400, 0x1F01020408101F00, 0x0E08080808080E00,
        0x0010080402010000, 0x0E02020202020E00, 0x040A110000000000, 0x0000000000001F00, 0x0804000000000000, 0x00000E010F110F00,
        0x1010161911111E00, 0x00000E1010110E00, 0x01010D1311110F00, 0x00000E111F100E00, 0x0609081C08080800, 0x00000F11110F010E,
        0x1010161911111100, 0x04000C0404040E00, 0x020006020202120C, 0x1010121418141200, 0x0C04040404040E00, 0x00001A1515111100,
        0x0000161911111100, 0x00000E1111110E00, 0x00001E11111E1010, 0x00000F11110F0101, 0x0000161910101000, 0x00000E100E011E00,
        0x08081C0808090600, 0x0000111111130D00, 0x00001111110A0400, 0x0000111115150A00, 0x0000110A040A1100, 0x00001111110F010E,
        0x00001F0204081F00, 0x0204040804040200, 0x0404040404040400, 0x0804040204040800, 0x0000081502000000,
    ]
}
