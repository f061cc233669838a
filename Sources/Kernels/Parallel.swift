import Foundation

/// Splitting non-BLAS loops over the threads the process was given (`BLAS.threads`).
public enum Parallel {
    /// Runs `body(i)` for every `i` in `0..<count`, over `workers` (default `BLAS.threads`)
    /// threads when that is more than one (DispatchQueue.concurrentPerform), inline otherwise. `body` must only
    /// write memory that no other index writes.
    @inline(__always)
    public static func forEach(_ count: Int, workers: Int? = nil, _ body: (Int) -> Void) {
        if count <= 0 { return }
        if count == 1 || (workers ?? BLAS.threads) <= 1 {
            for i in 0..<count { body(i) }
        } else {
            DispatchQueue.concurrentPerform(iterations: count, execute: body)
        }
    }

    /// Runs `body(range)` over `count` items split into contiguous chunks, one chunk per
    /// worker (at least `minimumChunk` items each, so tiny loops stay inline).
    @inline(__always)
    public static func forChunks(_ count: Int, minimumChunk: Int = 4096, _ body: (Range<Int>) -> Void) {
        if count <= 0 { return }
        let workers = min(BLAS.threads, max(1, count / max(minimumChunk, 1)))
        if workers <= 1 { body(0..<count); return }
        let chunk = (count + workers - 1) / workers
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            let start = w * chunk
            let end = min(count, start + chunk)
            if start < end { body(start..<end) }
        }
    }

    /// Runs `body(workers)` with OpenBLAS restricted to one thread, restoring the count
    /// afterwards: for loops that run BLAS calls on several workers at once. `workers` is the
    /// thread count before the switch (pass it to `forEach`, which would otherwise see 1).
    public static func withSingleThreadedBLAS<T>(_ body: (_ workers: Int) -> T) -> T {
        let threads = BLAS.threads
        if threads <= 1 { return body(threads) }
        BLAS.threads = 1
        defer { BLAS.threads = threads }
        return body(threads)
    }
}
