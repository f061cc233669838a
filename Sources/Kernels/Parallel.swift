import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Splitting non-BLAS loops over the threads the process was given (`BLAS.threads`), on
/// OpenBLAS's own thread server.
///
/// Why not a second pool: OpenBLAS keeps `threads - 1` workers that spin (sched_yield) for
/// about 0.1 s after every call. Loops run on other threads (DispatchQueue.concurrentPerform)
/// then share the cores with those spinning workers: on 2 cores, 3-4 runnable threads, and a
/// profile of the smollm2-135m step at 2 threads showed ~10% of the CPU time in sched_yield.
/// OpenBLAS's `gotoblas_pthread` (its pthread_create/join replacement) runs a function on
/// the same workers, the caller taking part 0, so a loop and a GEMM never overlap.
///
/// Every region runs with BLAS single-threaded (a worker that called a threaded sgemm would
/// wait for itself), and a region started inside another one (or on another thread while one
/// runs) runs inline. Splits depend only on `count` and the worker count, and each index or
/// chunk is computed whole by one thread, so results do not depend on which thread ran what.
public enum Parallel {
    /// Runs `body(i)` for every `i` in `0..<count`, over `workers` (default `BLAS.threads`)
    /// threads when that is more than one, inline otherwise. Indices are handed out one at a
    /// time (a shared counter), which balances uneven jobs (attention rows of different
    /// lengths). `body` must only write memory that no other index writes.
    public static func forEach(_ count: Int, workers: Int? = nil, _ body: (Int) -> Void) {
        forEach(count, workers: workers) { i, _ in body(i) }
    }

    /// `forEach` that also hands `body` the index of the thread running it, in
    /// `0..<min(count, workers)`: no two indices run at once on one thread, so a job can use
    /// its thread's slot of a scratch buffer (slots for the threads, not for every job).
    public static func forEach(_ count: Int, workers: Int? = nil, _ body: (_ index: Int, _ worker: Int) -> Void) {
        if count <= 0 { return }
        let threads = min(count, workers ?? BLAS.threads)
        if threads <= 1 {
            for i in 0..<count { body(i, 0) }
            return
        }
        let next = Counter()
        run(threads) { w in
            while true {
                let i = next.value.wrappingAdd(1, ordering: .relaxed).oldValue
                if i >= count { return }
                body(i, w)
            }
        }
    }

    /// Runs `body(range)` over `count` items split into contiguous chunks, one chunk per
    /// worker (at least `minimumChunk` items each, so tiny loops stay inline).
    public static func forChunks(_ count: Int, minimumChunk: Int = 4096, _ body: (Range<Int>) -> Void) {
        if count <= 0 { return }
        let workers = min(BLAS.threads, max(1, count / max(minimumChunk, 1)))
        if workers <= 1 { body(0..<count); return }
        let chunk = (count + workers - 1) / workers
        run(workers) { w in
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

    /// Where `run` put its last region: on OpenBLAS's workers, inline (nested, or another
    /// region already running), or on Dispatch (no `gotoblas_pthread` in the linked OpenBLAS).
    public enum Placement: Sendable { case blasThreads, inline, dispatch }

    /// Calls `body(w)` once for every `w` in `0..<workers`, `w` = 0 on the calling thread,
    /// the others on OpenBLAS's workers (at most one part per thread).
    /// Returns where it ran (for tests).
    @discardableResult
    public static func run(_ workers: Int, _ body: (Int) -> Void) -> Placement {
        if workers <= 1 {
            if workers == 1 { body(0) }
            return .inline
        }
        guard regionActive.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged else {
            for w in 0..<workers { body(w) }
            return .inline
        }
        defer { regionActive.store(false, ordering: .releasing) }
        return withSingleThreadedBLAS { _ in
            guard let server = ThreadServer.shared, workers <= server.threadCount() else {
                DispatchQueue.concurrentPerform(iterations: workers, execute: body)
                return .dispatch
            }
            withoutActuallyEscaping(body) { escapable in
                var region = Region(body: escapable)
                withUnsafePointer(to: &region) { regionPointer in
                    var parts = (0..<workers).map { Part(region: regionPointer, index: $0) }
                    parts.withUnsafeMutableBufferPointer { buffer in
                        _ = server.start(Int32(workers), unsafeBitCast(runPart, to: UnsafeMutableRawPointer.self),
                                         UnsafeMutableRawPointer(buffer.baseAddress!), Int32(MemoryLayout<Part>.stride))
                    }
                }
            }
            return .blasThreads
        }
    }

    // MARK: - OpenBLAS's thread server

    private static let regionActive = Atomic<Bool>(false)

    private final class Counter: Sendable { let value = Atomic<Int>(0) }

    private struct Region { let body: (Int) -> Void }

    /// What one thread receives: `gotoblas_pthread` passes `args + w * stride` to part w.
    private struct Part {
        let region: UnsafePointer<Region>
        let index: Int
    }

    private static let runPart: @convention(c) (UnsafeMutableRawPointer?) -> Void = { raw in
        let part = raw!.assumingMemoryBound(to: Part.self).pointee
        part.region.pointee.body(part.index)
    }

    /// `gotoblas_pthread(numthreads, function, args, stride)` and the server's thread count
    /// (`blas_num_threads`, the caller included), looked up once in the linked OpenBLAS.
    private struct ThreadServer: @unchecked Sendable {
        typealias Start = @convention(c) (Int32, UnsafeMutableRawPointer?, UnsafeMutableRawPointer?, Int32) -> Int32
        let start: Start
        let threads: UnsafePointer<Int32>

        func threadCount() -> Int { Int(threads.pointee) }

        static let shared: ThreadServer? = {
            BLAS.ensureBestCore()
            guard let start = dlsym(nil, "gotoblas_pthread"), let threads = dlsym(nil, "blas_num_threads") else { return nil }
            return ThreadServer(start: unsafeBitCast(start, to: Start.self),
                                threads: UnsafePointer(threads.assumingMemoryBound(to: Int32.self)))
        }()
    }
}
