import Foundation
import XCTest

@testable import Training

/// A save that replaces `final/` moves the old one aside to `.old-final-<pid>` and renames the new
/// one in; killed between those two renames (SIGKILL, OOM, power) it leaves no `final/` and the
/// old one aside. The next run must see that checkpoint when it chooses what to resume from:
/// before, the choice came first and the recovery after, so `--resume auto` said "no complete
/// checkpoint; starting fresh", trained from the initial model, and overwrote the recovered
/// `final/` with that run's, losing every step the old one held; and a run without `--resume`
/// was not told that OUT holds a run.
final class InterruptedSaveResumeTests: XCTestCase {
    func testAFinalMovedAsideByAnInterruptedSaveIsResumedFrom() throws {
        let sandbox = try TrainerSandbox()
        let data = try sandbox.writePairs("train.jsonl", TrainerSandbox.arithmetic)
        var p = sandbox.parameters(data: data)
        p.maxSteps = 2
        _ = try sandbox.train(p)
        let out = URL(fileURLWithPath: p.outputDirectory), final = out.appendingPathComponent("final")
        let trained = try TrainerSandbox.masterWeights(final)
        // What the kill between the two renames leaves (CheckpointStore.save's aside name).
        try FileManager.default.moveItem(at: final, to: out.appendingPathComponent(".old-final-99999"))

        var resumed = p
        resumed.resume = "auto"
        resumed.maxSteps = 3
        var messages: [String] = []
        let (summary, _) = try sandbox.train(resumed) { $0.onMessage = { messages.append($0) } }
        XCTAssertTrue(messages.contains("restored \(final.path), whose replacement was interrupted"), "\(messages)")
        XCTAssertTrue(messages.contains("resuming from \(final.path) at step 2"), "\(messages)")
        XCTAssertEqual(summary.startStep, 2, "\(messages)")
        XCTAssertNotEqual(try TrainerSandbox.masterWeights(final), trained, "step 3 was trained on top")

        // A fresh run (no --resume) on such an OUT is refused instead of overwriting the recovered final/.
        try FileManager.default.moveItem(at: final, to: out.appendingPathComponent(".old-final-99998"))
        XCTAssertThrowsError(try sandbox.train(p)) { error in
            XCTAssertTrue("\(error)".contains("already holds checkpoints of a run; pass --resume auto"), "\(error)")
        }
        XCTAssertEqual(try TrainerSandbox.masterWeights(final).count, trained.count, "final/ is back and complete")
    }
}
