import Foundation
import XCTest

@testable import Training

/// Kills a process at random moments while it saves checkpoints, many times, and checks
/// that every checkpoint left behind verifies (a torn one is never named checkpoint-<step>).
final class CheckpointKillTests: XCTestCase {
    static let childDirectoryVariable = "DPO_TEST_SAVE_LOOP_DIR"
    static let readyFileVariable = "DPO_TEST_SAVE_LOOP_READY"

    /// Child mode (when the variable is set): save checkpoints in a loop until killed.
    /// Parent mode: one save of the same kind, verified (so the test asserts something either way).
    func testSaveLoopChild() throws {
        if let path = ProcessInfo.processInfo.environment[Self.childDirectoryVariable] {
            let store = CheckpointStore(outputDirectory: URL(fileURLWithPath: path))
            let deadline = Date().addingTimeInterval(20)
            var step = 1
            while Date() < deadline {
                try Self.saveNumbered(store, name: step % 3 == 0 ? "final" : CheckpointStore.checkpointName(step: step), step: step)
                try store.rotate(keep: 2)
                if step == 1, let ready = ProcessInfo.processInfo.environment[Self.readyFileVariable] {
                    FileManager.default.createFile(atPath: ready, contents: nil)  // the parent starts its random timer now
                }
                step += 1
            }
            return
        }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kill-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let store = CheckpointStore(outputDirectory: directory)
        try Self.saveNumbered(store, name: "checkpoint-1", step: 1)
        try Self.checkConsistent(directory.appendingPathComponent("checkpoint-1"))
    }

    /// Two files whose bytes encode the step, ~1 MiB so a kill often lands mid-write.
    static func saveNumbered(_ store: CheckpointStore, name: String, step: Int) throws {
        try store.save(name: name, step: step) { dir in
            let block = Data(repeating: UInt8(step % 251), count: 1 << 20)
            try block.write(to: dir.appendingPathComponent("model.safetensors"))
            try Data("{\"global_step\": \(step)}".utf8).write(to: dir.appendingPathComponent("trainer_state.json"))
        }
    }

    /// A complete checkpoint verifies and its contents belong to its manifest's step.
    static func checkConsistent(_ directory: URL) throws {
        let manifest = try CheckpointStore.verify(directory)
        let model = try Data(contentsOf: directory.appendingPathComponent("model.safetensors"))
        XCTAssertEqual(model.count, 1 << 20)
        XCTAssertTrue(model.allSatisfy { $0 == UInt8(manifest.step % 251) }, "\(directory.path)")
        let state = try String(contentsOf: directory.appendingPathComponent("trainer_state.json"), encoding: .utf8)
        XCTAssertEqual(state, "{\"global_step\": \(manifest.step)}")
    }

    func testKillingSavesAtRandomMomentsNeverLeavesATornCheckpoint() throws {
        let executable = URL(fileURLWithPath: CommandLine.arguments[0])
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kill-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var random = SystemRandomNumberGenerator()
        let ready = directory.deletingLastPathComponent().appendingPathComponent("\(directory.lastPathComponent).ready")
        defer { try? FileManager.default.removeItem(at: ready) }
        var killsDuringSave = 0
        for trial in 0..<15 {
            let child = Process()
            child.executableURL = executable
            child.arguments = ["TrainingTests.CheckpointKillTests/testSaveLoopChild"]
            var environment = ProcessInfo.processInfo.environment
            environment[Self.childDirectoryVariable] = directory.path
            environment[Self.readyFileVariable] = ready.path
            child.environment = environment
            child.standardOutput = FileHandle.nullDevice
            child.standardError = FileHandle.nullDevice
            try? FileManager.default.removeItem(at: ready)
            try child.run()
            // Wait until the child is saving (process start-up varies with load), then kill at a random moment.
            let startDeadline = Date().addingTimeInterval(30)
            while !FileManager.default.fileExists(atPath: ready.path) && child.isRunning && Date() < startDeadline { usleep(5_000) }
            usleep(UInt32.random(in: 0...150_000, using: &random))
            kill(child.processIdentifier, SIGKILL)
            child.waitUntilExit()
            XCTAssertEqual(child.terminationReason, .uncaughtSignal, "trial \(trial): the child was killed, not finished")

            let names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
            if names.contains(where: { $0.hasPrefix(".tmp-") || $0.hasPrefix(".old-") }) { killsDuringSave += 1 }
            // What the next run does first: recover, then pick the newest complete checkpoint.
            let store = CheckpointStore(outputDirectory: directory)
            store.recoverInterruptedSaves()
            for name in try FileManager.default.contentsOfDirectory(atPath: directory.path) {
                XCTAssertFalse(name.hasPrefix("."), "trial \(trial): \(name) left after recovery")
                try Self.checkConsistent(directory.appendingPathComponent(name))
            }
            var skipped: [String] = []
            XCTAssertNotNil(store.newestComplete(skipped: &skipped), "trial \(trial)")
            XCTAssertEqual(skipped, [], "trial \(trial)")
        }
        XCTAssertGreaterThan(killsDuringSave, 0, "some kills landed inside a save")
    }
}
