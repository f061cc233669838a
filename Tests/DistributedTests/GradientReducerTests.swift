@testable import Distributed
import TestSupport
import XCTest

/// A pretend world of `size` ranks that all hold the same values as this one: a sum over
/// ranks is `size` x the local values. Records the order in which reductions start and
/// completes a non-blocking one only after `testsToComplete` tests, like MPI progress.
final class MirroredCommunicator: Communicator {
    let size: Int
    var rank: Int { 0 }
    var node: (rank: Int, size: Int, leader: Int) { (0, 1, 0) }
    /// What another rank contributes to `anyRank` / `allReduceMax`.
    var peerFlag: Int64 = 0
    var testsToComplete = 2
    /// (first element address, count, groupReady calls so far) of each started reduction.
    var started: [(address: Int, count: Int)] = []

    init(size: Int) { self.size = size }

    final class Request: AllReduceRequest {
        let finishWork: () -> Void
        var remaining: Int
        var done = false
        init(remaining: Int, finishWork: @escaping () -> Void) { self.remaining = remaining; self.finishWork = finishWork }
        func wait() { if !done { done = true; finishWork() } }
        func test() -> Bool {
            if done { return true }
            remaining -= 1
            if remaining <= 0 { wait() }
            return done
        }
    }

    func barrier() {}
    func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) {}
    func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) { for i in buffer.indices { buffer[i] *= Float(size) } }
    func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) { for i in buffer.indices { buffer[i] *= Double(size) } }
    func allReduceMax(_ buffer: UnsafeMutableBufferPointer<Int64>) { for i in buffer.indices { buffer[i] = Swift.max(buffer[i], peerFlag) } }
    func allReduceSumHalf(_ buffer: UnsafeMutableBufferPointer<UInt16>) {
        // size x value, adding one rank at a time with half rounding, as MPI would.
        let copy = Array(buffer)
        for _ in 1..<size { copy.withUnsafeBufferPointer { HalfPrecisionArithmetic.add($0, into: buffer) } }
    }
    func startAllReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) -> AllReduceRequest {
        started.append((Int(bitPattern: buffer.baseAddress), buffer.count))
        return Request(remaining: testsToComplete) { self.allReduceSum(buffer) }
    }
    func startAllReduceSumHalf(_ buffer: UnsafeMutableBufferPointer<UInt16>) -> AllReduceRequest {
        started.append((Int(bitPattern: buffer.baseAddress), buffer.count))
        return Request(remaining: testsToComplete) { self.allReduceSumHalf(buffer) }
    }
    func allGather(_ send: UnsafeRawBufferPointer, into receive: UnsafeMutableRawBufferPointer) {}
    func allGatherVariable(_ send: UnsafeRawBufferPointer) -> [[UInt8]] { Array(repeating: Array(send), count: size) }
    func abort(code: Int32, message: String) -> Never { fatalError("abort: \(message)") }
    func finalize() {}
}

final class GradientReducerTests: XCTestCase {
    let groupSizes = [300, 1_000, 1_000, 1_000, 257]
    var groupRanges: [Range<Int>] {
        var result: [Range<Int>] = [], offset = 0
        for n in groupSizes { result.append(offset..<(offset + n)); offset += n }
        return result
    }
    var total: Int { groupSizes.reduce(0, +) }
    /// 1200 fp32 elements = 4800 bytes per bucket.
    let bucketMegabytes = 4_800.0 / 1_048_576

    func testFP32MeanOverRanksWithBucketsStartedInOrderDuringBackward() throws {
        let world = MirroredCommunicator(size: 4)
        var random = TestRandom(seed: 5)
        let original = random.array(total)
        var gradients = original
        try gradients.withUnsafeMutableBufferPointer { g in
            let reducer = try GradientReducer(communicator: world, gradients: g, groupRanges: groupRanges,
                                              bucketMegabytes: bucketMegabytes, wireType: .fp32)
            XCTAssertEqual(reducer.buckets.map(\.range.count).max(), 1_200)
            var startedAfterGroup: [Int] = []
            for group in groupRanges.indices.reversed() {
                reducer.groupReady(group)
                startedAfterGroup.append(world.started.count)
            }
            // Groups 4+3 (1257 > 1200): bucket 0 = last 1200 elements, ready once group 3 is final.
            XCTAssertEqual(startedAfterGroup.first, 0, "group 4 alone completes no bucket")
            XCTAssertGreaterThan(startedAfterGroup[1], 0, "a bucket starts as soon as its groups are final")
            XCTAssertEqual(startedAfterGroup.last, reducer.buckets.count)
            let base = Int(bitPattern: g.baseAddress)
            XCTAssertEqual(world.started.map { ($0.address - base) / 4 }, reducer.buckets.map(\.range.lowerBound), "bucket order")
            let reduction = reducer.finish()
            XCTAssertFalse(reduction.nonFinite)
            XCTAssertEqual(reduction.bucketsStartedEarly, reducer.buckets.count)
            XCTAssertGreaterThan(reduction.bucketsCompletedEarly, 0, "tests during backward completed some buckets")
        }
        // (g / 4) x 4 is exact in binary floating point.
        XCTAssertEqual(gradients, original)
    }

    func testFP16MeanWithinHalfRounding() throws {
        let world = MirroredCommunicator(size: 2)
        var random = TestRandom(seed: 9)
        let original = random.array(total, scale: 3)
        var gradients = original
        try gradients.withUnsafeMutableBufferPointer { g in
            let reducer = try GradientReducer(communicator: world, gradients: g, groupRanges: groupRanges,
                                              bucketMegabytes: bucketMegabytes, wireType: .fp16)
            XCTAssertEqual(reducer.buckets.map(\.range.count).max(), 2_400, "fp16 buckets hold twice the elements")
            for group in groupRanges.indices.reversed() { reducer.groupReady(group) }
            XCTAssertFalse(reducer.finish().nonFinite)
        }
        for i in 0..<total {
            // Pre-divided by 2 and rounded to half (relative error 2^-11), then summed (another 2^-11).
            XCTAssertEqual(gradients[i], original[i], accuracy: abs(original[i]) * 0x1p-10 + 0x1p-24, "element \(i)")
        }
    }

    func testFinishWithoutGroupReadyReducesEverythingAndStepsRepeat() throws {
        let world = MirroredCommunicator(size: 2)
        var gradients = [Float](repeating: 0.75, count: total)
        try gradients.withUnsafeMutableBufferPointer { g in
            let reducer = try GradientReducer(communicator: world, gradients: g, groupRanges: groupRanges,
                                              bucketMegabytes: bucketMegabytes)
            for step in 0..<3 {
                world.started = []
                if step == 1 { reducer.groupReady(0) }  // out of order: nothing may start before bucket 0
                XCTAssertTrue(world.started.isEmpty, "bucket order is kept even when groups arrive out of order")
                let reduction = reducer.finish()
                XCTAssertEqual(world.started.count, reducer.buckets.count, "step \(step)")
                XCTAssertEqual(reduction.bucketsStartedEarly, 0)
            }
        }
        XCTAssertEqual(Set(gradients), [0.75])
    }

    func testNonFiniteIsReportedLocallyAndFromOtherRanks() throws {
        for wireType in GradientReducer.WireType.allCases {
            let world = MirroredCommunicator(size: 2)
            var gradients = [Float](repeating: 1, count: total)
            gradients[2_000] = .infinity
            try gradients.withUnsafeMutableBufferPointer { g in
                let reducer = try GradientReducer(communicator: world, gradients: g, groupRanges: groupRanges, wireType: wireType)
                XCTAssertTrue(reducer.finish().nonFinite, "\(wireType): local inf")
                g[2_000] = 1
                XCTAssertFalse(reducer.finish().nonFinite, "\(wireType): all finite")
                world.peerFlag = 1
                XCTAssertTrue(reducer.finish().nonFinite, "\(wireType): another rank's inf/NaN")
            }
        }
        // fp16 overflow of a finite fp32 gradient (7e4 / 1 rank... here / 2 = 35000, x2 = 70000 > 65504).
        let world = MirroredCommunicator(size: 2)
        var big = [Float](repeating: 70_000, count: total)
        try big.withUnsafeMutableBufferPointer { g in
            let reducer = try GradientReducer(communicator: world, gradients: g, groupRanges: groupRanges, wireType: .fp16)
            XCTAssertTrue(reducer.finish().nonFinite, "a half sum that overflows is a skipped step")
        }
    }

    func testOneRankOnlyChecks() throws {
        let world = SingleProcessCommunicator()
        var gradients: [Float] = (0..<total).map { Float($0) }
        let original = gradients
        try gradients.withUnsafeMutableBufferPointer { g in
            let reducer = try GradientReducer(communicator: world, gradients: g, groupRanges: groupRanges, wireType: .fp16)
            for group in groupRanges.indices.reversed() { reducer.groupReady(group) }
            XCTAssertFalse(reducer.finish().nonFinite)
            g[5] = .nan
            XCTAssertTrue(reducer.finish().nonFinite)
        }
        XCTAssertEqual(Array(gradients[6...]), Array(original[6...]), "one rank: no rounding to half")
    }

    func testRejectsGroupsThatDoNotTileTheBuffer() {
        let g = UnsafeMutableBufferPointer<Float>.allocate(capacity: 10)
        defer { g.deallocate() }
        do {
            let world = SingleProcessCommunicator()
            XCTAssertThrowsError(try GradientReducer(communicator: world, gradients: g, groupRanges: [0..<4, 5..<10]))
            XCTAssertThrowsError(try GradientReducer(communicator: world, gradients: g, groupRanges: [0..<4]))
            XCTAssertThrowsError(try GradientReducer(communicator: world, gradients: g, groupRanges: [0..<10], bucketMegabytes: 0))
        }
    }
}

final class ThreadShareAndSignalTests: XCTestCase {
    func testThreadShares() {
        let none: [String: String] = [:]
        XCTAssertEqual(ThreadShare.threads(node: (0, 2), hostCores: 8, affinityCores: 8, environment: none), 4)
        XCTAssertEqual(ThreadShare.threads(node: (0, 3), hostCores: 8, affinityCores: 8, environment: none), 3, "remainder to low ranks")
        XCTAssertEqual(ThreadShare.threads(node: (2, 3), hostCores: 8, affinityCores: 8, environment: none), 2)
        XCTAssertEqual(ThreadShare.threads(node: (3, 4), hostCores: 2, affinityCores: 2, environment: none), 1, "oversubscribed: at least 1")
        XCTAssertEqual(ThreadShare.threads(node: (0, 2), hostCores: 8, affinityCores: 2, environment: none), 2, "bound ranks use their cores")
        XCTAssertEqual(ThreadShare.threads(node: (0, 2), hostCores: 8, affinityCores: 8, environment: ["DPO_THREADS": "3"]), 3)
        XCTAssertEqual(ThreadShare.threads(node: (0, 2), hostCores: 8, affinityCores: 8, override: 5, environment: ["DPO_THREADS": "3"]), 5)
    }

    func testChecksumSeesEveryBit() {
        var values: [Float] = (0..<1_003).map { Float($0) }
        let first = values.withUnsafeBytes { Checksum.of($0) }
        XCTAssertEqual(first, values.withUnsafeBytes { Checksum.of($0) })
        for index in [0, 500, 1_000, 1_002] {
            let saved = values[index]
            values[index] = saved.nextUp
            XCTAssertNotEqual(values.withUnsafeBytes { Checksum.of($0) }, first, "element \(index)")
            values[index] = saved
        }
        XCTAssertNotEqual(Checksum.of("beta=0.1"), Checksum.of("beta=0.2"))
    }

    func testStopSignalIsRecorded() throws {
        try ShutdownSignal.install()
        defer { ShutdownSignal.uninstall(); ShutdownSignal.reset() }
        ShutdownSignal.reset()
        XCTAssertFalse(ShutdownSignal.requested)
        raise(SIGUSR1)
        XCTAssertTrue(ShutdownSignal.requested)
        XCTAssertEqual(ShutdownSignal.signalNumber, SIGUSR1)
        XCTAssertTrue(ShutdownSignal.agreed(by: SingleProcessCommunicator()))
        ShutdownSignal.reset()
        XCTAssertFalse(ShutdownSignal.agreed(by: SingleProcessCommunicator()))
    }
}
