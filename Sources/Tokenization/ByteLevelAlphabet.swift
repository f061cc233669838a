// MARK: - GPT-2 byte <-> character mapping

/// The reversible byte -> printable character table of GPT-2's byte-level BPE (`bytes_to_unicode`).
///
/// Printable Latin-1 bytes map to themselves; the other 68 bytes (controls, space, ...) map to
/// U+0100 onward in byte order, so a space is `Ġ` (U+0120) and a newline `Ċ` (U+010A).
public enum ByteLevelAlphabet {
    /// Character of each byte, [256].
    public static let characterOfByte: [Unicode.Scalar] = {
        var printable = Set<Int>()
        for b in 0x21...0x7E { printable.insert(b) }
        for b in 0xA1...0xAC { printable.insert(b) }
        for b in 0xAE...0xFF { printable.insert(b) }
        var table = [Unicode.Scalar](repeating: "\0", count: 256)
        var next = 0
        for b in 0..<256 {
            if printable.contains(b) {
                table[b] = Unicode.Scalar(UInt32(b))!
            } else {
                table[b] = Unicode.Scalar(UInt32(256 + next))!
                next += 1
            }
        }
        return table
    }()

    /// Byte of each character of the table.
    public static let byteOfCharacter: [Unicode.Scalar: UInt8] = {
        var map = [Unicode.Scalar: UInt8]()
        for (b, c) in characterOfByte.enumerated() { map[c] = UInt8(b) }
        return map
    }()

    /// The byte-level spelling of UTF-8 bytes (what vocabulary keys look like).
    public static func encode<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
        var text = String.UnicodeScalarView()
        for b in bytes { text.append(characterOfByte[Int(b)]) }
        return String(text)
    }

    /// Bytes of a byte-level spelled token, or nil when a character is outside the table.
    public static func decode(_ token: String) -> [UInt8]? {
        var bytes = [UInt8]()
        bytes.reserveCapacity(token.unicodeScalars.count)
        for c in token.unicodeScalars {
            guard let b = byteOfCharacter[c] else { return nil }
            bytes.append(b)
        }
        return bytes
    }
}
