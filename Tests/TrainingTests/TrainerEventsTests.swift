import Distributed
import Foundation
import XCTest

@testable import Training

/// What `DPOTrainer.run(onEvent:)` reports: the start-up summary once before the first
/// progress, progress that knows where a resumed run started, no rewards for `--loss sft`,
/// and a stop asked by the callback.
final class TrainerEventsTests: XCTestCase {
    func run(_ sandbox: TrainerSandbox, _ p: TrainingParameters, stopAt: Int? = nil) throws -> (TrainingSummary, [TrainingEvent]) {
        var events: [TrainingEvent] = []
        let trainer = DPOTrainer(parameters: p, communicator: SingleProcessCommunicator(), makeMetricsSink: { _, _ in MemoryMetricsSink() },
                                 testHooks: TrainingTestHooks(faults: FaultInjection(faults: [])))
        let summary = try trainer.run { event in
            events.append(event)
            if case .progress(let snapshot) = event, snapshot.step == stopAt { return .stop }
            return .more
        }
        return (summary, events)
    }

    func snapshots(_ events: [TrainingEvent]) -> [ProgressSnapshot] {
        events.compactMap { if case .progress(let s) = $0 { return s } else { return nil } }
    }

    func testStartupSummaryThenProgressWithTheResumedStartStep() throws {
        let sandbox = try TrainerSandbox()
        let data = try sandbox.writePairs("train.jsonl", TrainerSandbox.arithmetic)
        var p = sandbox.parameters(data: data)
        p.batchPairs = 1
        p.maxSteps = 4
        let (stopped, first) = try run(sandbox, p, stopAt: 2)
        XCTAssertTrue(stopped.stoppedBySignal)
        XCTAssertEqual(stopped.finalStep, 2, "the callback's .stop ends the run after that step")
        let startups = first.enumerated().compactMap { index, event -> (Int, ProgressStartupSummary)? in
            if case .startup(let facts) = event { return (index, facts) } else { return nil }
        }
        XCTAssertEqual(startups.count, 1)
        let firstProgress = try XCTUnwrap(first.firstIndex { if case .progress = $0 { return true } else { return false } })
        XCTAssertLessThan(startups[0].0, firstProgress)
        let facts = startups[0].1
        XCTAssertEqual(facts.parameterCount, TrainerSandbox.tinyConfig.parameterCountIfRepresentable)
        XCTAssertEqual(facts.trainPairs, 4)
        XCTAssertEqual(facts.globalBatch, 1)
        XCTAssertEqual(facts.totalSteps, 4)
        XCTAssertGreaterThan(facts.memory.referenceBytes, 0)
        XCTAssertEqual(snapshots(first).map(\.startStep), [0, 0])

        p.resume = "auto"
        let (resumed, second) = try run(sandbox, p)
        XCTAssertEqual(resumed.finalStep, 4)
        XCTAssertEqual(snapshots(second).map(\.step), [3, 4])
        XCTAssertEqual(snapshots(second).map(\.startStep), [2, 2], "the ETA of a resumed run counts only its own steps")
    }

    func testSFTProgressHasNoRewards() throws {
        let sandbox = try TrainerSandbox()
        let data = try sandbox.writePairs("train.jsonl", TrainerSandbox.arithmetic)
        var p = sandbox.parameters(data: data)
        p.loss.kind = .sft
        p.maxSteps = 2
        let progress = snapshots(try run(sandbox, p).1)
        XCTAssertEqual(progress.count, 2)
        for snapshot in progress {
            XCTAssertTrue(snapshot.loss.isFinite)
            XCTAssertTrue(snapshot.rewardAccuracy.isNaN && snapshot.rewardMargin.isNaN, "\(snapshot)")
            XCTAssertFalse(ProgressReporter.plainLine(snapshot).contains("acc"))
        }
    }
}
