#if canImport(Glibc)
import Glibc
#endif

/// ZeRO-2's flat gradient vector [P]: an address range backward writes into at the layout
/// offsets exactly as into a plain gradient buffer, whose physical pages exist only while they
/// hold gradients no bucket has sent yet.
///
/// It is one private anonymous mapping (no memory until written: untouched pages read as
/// zeros). `release(range)` zeroes `range` and hands the whole pages inside it back to the
/// kernel (`MADV_DONTNEED`): they cost nothing until backward next writes them. So backward's
/// `+=` into the window always starts from zero, and a rank's resident fp32 gradients are only
/// the buckets written and not yet sent (the pages a bucket shares with its neighbours, one at
/// each end, stay until `releaseAll`). Why not real bucket buffers:
/// backward writes each parameter at its layout offset (a tied LM head into the embedding's
/// range at the start of backward, the embedding scatter at the end), so a window keeps every
/// kernel unchanged and the kernel's zeroed pages replace the per-step clearing pass.
///
/// Plain 4 KiB pages for a window whose pages come and go every step: `MADV_HUGEPAGE` (as
/// `ScalarBuffer` advises) made each step's faults ask for fresh 2 MiB pages, and on a busy
/// host the kernel compacts memory for them in the fault (measured, SmolLM2-135M shape, 2 ranks,
/// AMD EPYC VM: 2.7-3.6 s of system time per step, against 0.09 s for `--zero 1`). Long-lived
/// buffers (the shard) still ask for huge pages (`hugePages: true`).
public final class GradientWindow {
    /// The gradients [count]: valid (zero where not written) for the window's lifetime.
    public let buffer: UnsafeMutableBufferPointer<Float>
    private let bytes: Int
    private static let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))

    /// A window of `count` floats; traps if the address space cannot be mapped (as an allocation failure does).
    public init(count: Int, hugePages: Bool = false) {
        bytes = max(1, count) * 4
        guard let raw = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0),
              raw != MAP_FAILED
        else { fatalError("GradientWindow: cannot map \(bytes) bytes for the gradients (errno \(errno))") }
        if hugePages { _ = madvise(raw, bytes, Int32(MADV_HUGEPAGE)) }
        buffer = UnsafeMutableBufferPointer(start: raw.bindMemory(to: Float.self, capacity: max(1, count)), count: count)
    }

    deinit { munmap(UnsafeMutableRawPointer(buffer.baseAddress!), bytes) }

    /// Elements `range` read as zeros afterwards: the whole pages inside it are dropped, its
    /// elements on the (at most two) pages it shares with elements outside are set to 0.
    public func release(_ range: Range<Int>) {
        guard !range.isEmpty, let base = buffer.baseAddress else { return }
        let start = Int(bitPattern: base + range.lowerBound), end = Int(bitPattern: base + range.upperBound)
        let first = (start + Self.pageSize - 1) / Self.pageSize * Self.pageSize, last = end / Self.pageSize * Self.pageSize
        guard last > first, let pointer = UnsafeMutableRawPointer(bitPattern: first) else {
            (base + range.lowerBound).update(repeating: 0, count: range.count)  // no whole page inside
            return
        }
        (base + range.lowerBound).update(repeating: 0, count: (first - start) / 4)
        (base + range.lowerBound).advanced(by: (last - start) / 4).update(repeating: 0, count: (end - last) / 4)
        let status = madvise(pointer, last - first, Int32(MADV_DONTNEED))
        precondition(status == 0, "GradientWindow: madvise(MADV_DONTNEED) failed (errno \(errno))")
    }

    /// Writes a zero at each page of `range`, all of whose elements must be zero, so each page
    /// takes one write fault. Backward's kernels read before they write (`+=`, sgemm with beta
    /// 1): a read first maps the shared zero page and the write after it faults again (copy on
    /// write), two faults per page.
    public func prefault(_ range: Range<Int>) {
        guard let base = buffer.baseAddress else { return }
        let stride = Self.pageSize / 4
        var i = range.lowerBound
        while i < range.upperBound {
            base[i] = 0
            i += stride
        }
    }

    /// Every element zero again, no page resident.
    public func releaseAll() {
        let status = madvise(UnsafeMutableRawPointer(buffer.baseAddress!), bytes, Int32(MADV_DONTNEED))
        precondition(status == 0, "GradientWindow: madvise(MADV_DONTNEED) failed (errno \(errno))")
    }
}
