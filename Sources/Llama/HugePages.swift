import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Transparent huge pages for large long-lived buffers that live in Swift arrays (the flat
/// weights a model directory loads into, which become the fp32 master weights).
///
/// Such an array's storage comes from malloc, which maps large blocks with plain 4 KiB pages:
/// writing 540 MB for the first time then takes 130 000 page faults, about 2 s of system time
/// on a VM. Advising the 2 MiB-aligned interior as `MADV_HUGEPAGE` before the first write (THP
/// in `madvise` mode, Debian's default) makes it one fault per 2 MiB. Same as `ScalarBuffer`
/// does for the buffers it maps itself. Harmless where THP is off or always on.
public enum HugePages {
    public static let size = 2 << 20

    /// Advises the whole 2 MiB pages inside `buffer`; buffers under 4 MiB are left alone.
    public static func advise(_ buffer: UnsafeMutableRawBufferPointer) {
        guard buffer.count >= 2 * size, let base = buffer.baseAddress else { return }
        let start = (Int(bitPattern: base) + size - 1) / size * size
        let end = (Int(bitPattern: base) + buffer.count) / size * size
        guard end > start, let aligned = UnsafeMutableRawPointer(bitPattern: start) else { return }
        _ = madvise(aligned, end - start, Int32(MADV_HUGEPAGE))
    }

    /// An array of `count` floats filled by `initialize` (which must write every element),
    /// its storage advised for huge pages before the first write.
    public static func floats(
        count: Int, _ initialize: (UnsafeMutableBufferPointer<Float>) throws -> Void
    ) rethrows -> [Float] {
        try [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            let exact = UnsafeMutableBufferPointer(rebasing: buffer[0..<count])
            advise(UnsafeMutableRawBufferPointer(exact))
            try initialize(exact)
            initialized = count
        }
    }

    /// `count` copies of `value` in huge-page-advised storage.
    public static func floats(repeating value: Float, count: Int) -> [Float] {
        floats(count: count) { $0.initialize(repeating: value) }
    }
}
