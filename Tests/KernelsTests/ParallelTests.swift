import XCTest
import Foundation
import TestSupport
@testable import Kernels

/// Parallel regions on OpenBLAS's thread server: every index once, part 0 on the caller,
/// nested regions inline, BLAS usable inside a region, the thread count restored.
final class ParallelTests: XCTestCase {
    /// Per-index counters (under a lock: a double run must show, not race).
    private final class Hits: @unchecked Sendable {
        private var counts: [Int]
        private let lock = NSLock()
        init(_ n: Int) { counts = [Int](repeating: 0, count: n) }
        subscript(i: Int) -> Int { lock.withLock { counts[i] } }
        func hit(_ i: Int) { lock.withLock { counts[i] += 1 } }
    }

    override func setUp() { previousThreads = BLAS.threads }
    override func tearDown() { BLAS.threads = previousThreads }
    private var previousThreads = 1

    /// forEach over 1001 jobs at 2 threads runs each index exactly once; forChunks covers
    /// 10007 items once in contiguous chunks.
    func testEveryIndexRunsOnce() {
        BLAS.threads = 2
        let hits = Hits(1001)
        Parallel.forEach(1001) { hits.hit($0) }
        XCTAssertEqual((0..<1001).filter { hits[$0] != 1 }, [])
        let items = Hits(10007)
        Parallel.forChunks(10007, minimumChunk: 16) { range in for i in range { items.hit(i) } }
        XCTAssertEqual((0..<10007).filter { items[$0] != 1 }, [])
    }

    /// Two parts at 2 threads run on OpenBLAS's workers: part 0 on the calling thread, part 1 on
    /// another; a region started inside it runs inline on the thread that asked.
    func testRegionRunsOnBLASWorkersAndNestsInline() {
        BLAS.threads = 2
        let caller = pthread_self()
        let onCaller = Hits(2), nestedInline = Hits(2)
        let placement = Parallel.run(2) { w in
            if pthread_equal(pthread_self(), caller) != 0 { onCaller.hit(w) }
            let nested = Parallel.run(2) { _ in }
            if nested == .inline { nestedInline.hit(w) }
        }
        XCTAssertEqual(placement, .blasThreads)
        XCTAssertEqual([onCaller[0], onCaller[1]], [1, 0], "part 0 on the caller, part 1 on a worker")
        XCTAssertEqual([nestedInline[0], nestedInline[1]], [1, 1])
        XCTAssertEqual(BLAS.threads, 2, "the thread count is restored after the region")
    }

    /// An sgemm inside each job (BLAS is single-threaded within a region) gives the product a
    /// plain call gives, bit for bit, and does not wait for the busy worker.
    func testBLASInsideARegion() {
        BLAS.threads = 2
        var random = TestRandom(seed: 90)
        let m = 37, n = 29, k = 41, jobs = 6
        let a = random.array(jobs * m * k), b = random.array(k * n)
        func products(parallel: Bool) -> [Float] {
            [Float](repeating: 0, count: jobs * m * n).mutated { c in
                let run = { (j: Int) in
                    a.withUnsafeBufferPointer { a in
                        Matmul.gemm(transposeA: false, transposeB: false, m: m, n: n, k: k, a: a.baseAddress! + j * m * k, lda: k,
                                    b: b, ldb: n, beta: 0, c: c + j * m * n, ldc: n)
                    }
                }
                if parallel { Parallel.forEach(jobs, run) } else { for j in 0..<jobs { run(j) } }
            }
        }
        XCTAssertEqual(products(parallel: true).map(\.bitPattern), products(parallel: false).map(\.bitPattern))
    }
}
