/// A built-in 5x7 bitmap font for printable ASCII, drawn for this project, so PNG plots need
/// no font files. Each glyph is 7 rows of 5 bits (bit 4 = leftmost column), packed
/// top row first into the high byte of a UInt64. Characters outside ASCII 32-126 draw as `?`.
public enum PlotFont {
    public static let glyphWidth = 5
    public static let glyphHeight = 7
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
        0x00000000000000, 0x04040404040004, 0x0A0A0000000000, 0x0A0A1F0A1F0A0A, 0x040F140E051E04, 0x18190204081303,
        0x0C12140815120D, 0x04040000000000, 0x02040808080402, 0x08040202020408, 0x0004150E150400, 0x0004041F040400,
        0x000000000C0408, 0x0000001F000000, 0x00000000000C0C, 0x00010204081000, 0x0E11131519110E, 0x040C040404040E,
        0x0E11010204081F, 0x1F02040201110E, 0x02060A121F0202, 0x1F101E0101110E, 0x0608101E11110E, 0x1F010204080808,
        0x0E11110E11110E, 0x0E11110F01020C, 0x000C0C000C0C00, 0x000C0C000C0408, 0x02040810080402, 0x00001F001F0000,
        0x08040201020408, 0x0E110102040004, 0x0E11010D15150E, 0x0E11111F111111, 0x1E11111E11111E, 0x0E11101010110E,
        0x1C12111111121C, 0x1F10101E10101F, 0x1F10101E101010, 0x0E11101711110F, 0x1111111F111111, 0x0E04040404040E,
        0x0702020202120C, 0x11121418141211, 0x1010101010101F, 0x111B1515111111, 0x11111915131111, 0x0E11111111110E,
        0x1E11111E101010, 0x0E11111115120D, 0x1E11111E141211, 0x0F10100E01011E, 0x1F040404040404, 0x1111111111110E,
        0x11111111110A04, 0x1111111515150A, 0x11110A040A1111, 0x11110A04040404, 0x1F01020408101F, 0x0E08080808080E,
        0x00100804020100, 0x0E02020202020E, 0x040A1100000000, 0x0000000000001F, 0x08040000000000, 0x00000E010F110F,
        0x1010161911111E, 0x00000E1010110E, 0x01010D1311110F, 0x00000E111F100E, 0x0609081C080808, 0x000F11110F010E,
        0x10101619111111, 0x04000C0404040E, 0x0200060202120C, 0x10101214181412, 0x0C04040404040E, 0x00001A15151111,
        0x00001619111111, 0x00000E1111110E, 0x00001E111E1010, 0x00000D130F0101, 0x00001619101010, 0x00000E100E011E,
        0x08081C08080906, 0x0000111111130D, 0x00001111110A04, 0x0000111115150A, 0x0000110A040A11, 0x000011110F010E,
        0x00001F0204081F, 0x02040408040402, 0x04040404040404, 0x08040402040408, 0x00000815020000,
    ]
}
