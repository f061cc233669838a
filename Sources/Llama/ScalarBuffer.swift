#if canImport(Glibc)
import Glibc
#endif

/// An owned, fixed-size, zero-initialised buffer of scalars (arena storage that is allocated
/// once and then only reused).
///
/// Buffers of 2 MiB and more are anonymous mappings: the kernel hands out zeroed pages, so
/// there is no memset pass, and `MADV_HUGEPAGE` lets it back them with 2 MiB pages where
/// transparent huge pages are enabled in `madvise` mode (Debian's default): one page fault per
/// 2 MiB instead of 512. A 135M-parameter run touches several GB of such buffers.
public final class ScalarBuffer<Scalar> {
    public let count: Int
    public let pointer: UnsafeMutablePointer<Scalar>
    /// Bytes mapped with mmap (0 = allocated on the heap).
    private let mappedBytes: Int
    /// Whether the mapping is this buffer's own anonymous memory (not a mapping taken over).
    private let anonymous: Bool

    static var hugePageThreshold: Int { 2 << 20 }

    public init(count: Int, zero: Scalar) {
        self.count = count
        let capacity = max(count, 1)
        let bytes = capacity * MemoryLayout<Scalar>.stride
        let zeroIsAllZeroBits = withUnsafeBytes(of: zero) { $0.allSatisfy { $0 == 0 } }
        if bytes >= Self.hugePageThreshold, zeroIsAllZeroBits, let mapped = Self.mapZeroedPages(bytes) {
            pointer = mapped.bindMemory(to: Scalar.self, capacity: capacity)
            mappedBytes = bytes
        } else {
            pointer = .allocate(capacity: capacity)
            pointer.initialize(repeating: zero, count: capacity)
            mappedBytes = 0
        }
        anonymous = true
    }

    /// Takes over `bytes` mapped at `pointer` (e.g. a shared file mapping, see `SharedWeights`):
    /// unmapped when the buffer goes.
    init(takingMapping pointer: UnsafeMutablePointer<Scalar>, count: Int, bytes: Int) {
        self.count = count
        self.pointer = pointer
        mappedBytes = bytes
        anonymous = false
    }

    /// Zeroed anonymous pages, advised as huge-page candidates; nil if the mapping fails
    /// (the caller falls back to the heap, whose failure is the usual out-of-memory trap).
    private static func mapZeroedPages(_ bytes: Int) -> UnsafeMutableRawPointer? {
        guard let raw = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
              raw != MAP_FAILED
        else { return nil }
        _ = madvise(raw, bytes, Int32(MADV_HUGEPAGE))
        return raw
    }

    /// Gives the pages of an anonymous mapping back to the kernel (`MADV_DONTNEED`): the buffer
    /// keeps its address and size, and reads as zeros until written again (the kernel hands out
    /// fresh zeroed pages on the next touch). For scratch whose contents are dead between uses
    /// and whose memory is wanted elsewhere meanwhile. Heap buffers (under 2 MiB) and mappings
    /// taken over (`init(takingMapping:)`, e.g. shared files) are left alone; returns the bytes
    /// released.
    @discardableResult
    public func releasePages() -> Int {
        guard mappedBytes > 0, anonymous else { return 0 }
        // Refaulted as small pages: a huge-page fault may compact memory first, which measured
        // 0.21-0.27 s of system time per step for the reference's 35 MB (1 000 faults) against
        // 0.02-0.04 s for small pages (9 200 faults; smollm2-135m, fp16, 4 x 256 tokens).
        _ = madvise(UnsafeMutableRawPointer(pointer), mappedBytes, Int32(MADV_NOHUGEPAGE))
        _ = madvise(UnsafeMutableRawPointer(pointer), mappedBytes, Int32(MADV_DONTNEED))
        return mappedBytes
    }

    deinit {
        if mappedBytes > 0 {
            munmap(UnsafeMutableRawPointer(pointer), mappedBytes)
        } else {
            pointer.deallocate()
        }
    }
}

typealias FloatBuffer = ScalarBuffer<Float>
typealias HalfBuffer = ScalarBuffer<UInt16>

extension ScalarBuffer where Scalar == Float {
    public convenience init(count: Int) { self.init(count: count, zero: 0) }
}

extension ScalarBuffer where Scalar == UInt16 {
    public convenience init(count: Int) { self.init(count: count, zero: 0) }
}
