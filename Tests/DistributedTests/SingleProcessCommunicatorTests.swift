import Distributed
import XCTest

/// A world of one rank: every collective is the identity, requests are complete at once.
final class SingleProcessCommunicatorTests: XCTestCase {
    let world = SingleProcessCommunicator()

    func testRankSizeAndPrimary() {
        XCTAssertEqual(world.rank, 0)
        XCTAssertEqual(world.size, 1)
        XCTAssertTrue(world.isPrimary)
        XCTAssertEqual(world.node.rank, 0)
        XCTAssertEqual(world.node.size, 1)
        XCTAssertEqual(world.node.leader, 0, "the host's first rank is this one")
    }

    func testReductionsLeaveValuesUnchanged() {
        var floats: [Float] = [1.5, -2, .infinity]
        floats.withUnsafeMutableBufferPointer { world.allReduceSum($0) }
        XCTAssertEqual(floats, [1.5, -2, .infinity])
        var doubles = [0.25, 7]
        doubles.withUnsafeMutableBufferPointer { world.allReduceSum($0) }
        XCTAssertEqual(doubles, [0.25, 7])
        var halves: [UInt16] = [0x3c00, 0xc000]
        halves.withUnsafeMutableBufferPointer { world.allReduceSumHalf($0) }
        XCTAssertEqual(halves, [0x3c00, 0xc000])
        XCTAssertEqual(world.max(42), 42)
        XCTAssertEqual(world.mean([3, 4]), [3, 4])
        XCTAssertTrue(world.anyRank(true))
        XCTAssertFalse(world.anyRank(false))
    }

    func testRequestsCompleteImmediately() {
        var floats: [Float] = [1, 2, 3]
        floats.withUnsafeMutableBufferPointer { buffer in
            let request = world.startAllReduceSum(buffer)
            XCTAssertTrue(request.test())
            request.wait()
        }
        XCTAssertEqual(floats, [1, 2, 3])
    }

    func testBroadcastAndGathers() {
        var bytes: [UInt8] = [9, 8, 7]
        bytes.withUnsafeMutableBytes { world.broadcast($0, root: 0) }
        XCTAssertEqual(bytes, [9, 8, 7])
        let send: [Int32] = [5, 6]
        var receive = [Int32](repeating: 0, count: 2)
        send.withUnsafeBytes { s in receive.withUnsafeMutableBytes { world.allGather(s, into: $0) } }
        XCTAssertEqual(receive, [5, 6])
        XCTAssertEqual(world.allGather([1.5, 2.5] as [Double]), [[1.5, 2.5]])
        XCTAssertEqual(world.allGather([] as [Float]), [[]])
    }

    func testParameterChecksumsAndConsistency() throws {
        var parameters: [Float] = (0..<1001).map { Float($0) * 0.5 }
        parameters.withUnsafeMutableBufferPointer { world.broadcastParameters($0) }
        try parameters.withUnsafeBufferPointer { try world.checkConsistency($0, step: 1) }
        try world.verifySameRun([("binary", RunFingerprint.executable()), ("configuration", "{}")])
    }

    func testWorldWithoutLauncherIsSingleProcess() throws {
        XCTAssertFalse(World.launchedByMPI(environment: ["PATH": "/bin"]))
        XCTAssertTrue(World.launchedByMPI(environment: ["OMPI_COMM_WORLD_SIZE": "2"]))
        XCTAssertTrue(World.launchedByMPI(environment: ["PMIX_RANK": "0"]))
        XCTAssertTrue(World.launchedByMPI(environment: ["PMI_RANK": "0"]))
        let communicator = try World.initialize(environment: [:])
        XCTAssertTrue(communicator is SingleProcessCommunicator)
        XCTAssertThrowsError(try World.initialize(environment: ["SLURM_STEP_NUM_TASKS": "4", "SLURM_PROCID": "1"])) {
            XCTAssertEqual($0 as? DistributedError, .launcherWithoutMPI(tasks: 4))
            XCTAssertTrue("\($0)".contains("srun --mpi=pmix"))
        }
        XCTAssertTrue(try World.initialize(environment: ["SLURM_STEP_NUM_TASKS": "1"]) is SingleProcessCommunicator)
    }

    func testWorldRunRethrowsInOneRankWorld() {
        struct Boom: Error {}
        XCTAssertThrowsError(try World.run { _ in throw Boom() }) { XCTAssertTrue($0 is Boom) }
    }
}
