import Foundation

/// A fast 64-bit checksum of raw bytes, to compare buffers across ranks.
///
/// Not cryptographic: four independent multiply-xor lanes over 8-byte words (fast enough
/// for 100M parameters in tens of milliseconds), mixed at the end. Any change of any bit
/// changes the checksum with overwhelming probability.
public enum Checksum {
    public static func of(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        let prime: UInt64 = 0x9E37_79B9_7F4A_7C15
        var lanes: (UInt64, UInt64, UInt64, UInt64) = (0x243F_6A88_85A3_08D3, 0x1319_8A2E_0370_7344,
                                                       0xA409_3822_299F_31D0, 0x082E_FA98_EC4E_6C89)
        let words = bytes.count / 8
        var index = 0
        if let base = bytes.baseAddress {
            while index + 4 <= words {
                let a = base.loadUnaligned(fromByteOffset: index * 8, as: UInt64.self)
                let b = base.loadUnaligned(fromByteOffset: index * 8 + 8, as: UInt64.self)
                let c = base.loadUnaligned(fromByteOffset: index * 8 + 16, as: UInt64.self)
                let d = base.loadUnaligned(fromByteOffset: index * 8 + 24, as: UInt64.self)
                lanes.0 = (lanes.0 ^ a) &* prime; lanes.0 ^= lanes.0 >> 29
                lanes.1 = (lanes.1 ^ b) &* prime; lanes.1 ^= lanes.1 >> 29
                lanes.2 = (lanes.2 ^ c) &* prime; lanes.2 ^= lanes.2 >> 29
                lanes.3 = (lanes.3 ^ d) &* prime; lanes.3 ^= lanes.3 >> 29
                index += 4
            }
            var tail = lanes.0
            while index < words {
                tail = (tail ^ base.loadUnaligned(fromByteOffset: index * 8, as: UInt64.self)) &* prime
                tail ^= tail >> 29
                index += 1
            }
            for offset in (words * 8)..<bytes.count {
                tail = (tail ^ UInt64(bytes[offset])) &* prime
            }
            lanes.0 = tail
        }
        var hash = UInt64(bytes.count) &* prime
        for lane in [lanes.0, lanes.1, lanes.2, lanes.3] {
            hash = (hash ^ lane) &* 0xBF58_476D_1CE4_E5B9
            hash ^= hash >> 31
        }
        return hash
    }

    public static func of(_ text: String) -> UInt64 {
        var copy = text
        return copy.withUTF8 { of(UnsafeRawBufferPointer($0)) }
    }
}
