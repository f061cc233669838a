import Foundation
import XCTest

@testable import Preference

/// Unreadable data files get one line naming the path and the cause, never Foundation's
/// "The operation could not be completed" / NSCocoaErrorDomain texts.
final class FileProblemTests: XCTestCase {

    private func problem(_ path: String, file: StaticString = #filePath, line: UInt = #line) -> String {
        do {
            _ = try DatasetReader.readPreferences(from: URL(fileURLWithPath: path))
            XCTFail("\(path) was read", file: file, line: line)
            return ""
        } catch { return "\(error)" }
    }

    func testUnreadableDataFilesNameThePathAndTheCause() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("file-problem-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        let file = root.appendingPathComponent("pairs.jsonl")
        try Data("{\"prompt\": \"a\", \"chosen\": \"b\", \"rejected\": \"c\"}\n".utf8).write(to: file)
        let loop = root.appendingPathComponent("loop")
        try FileManager.default.createSymbolicLink(atPath: loop.path, withDestinationPath: loop.path)
        let array = root.appendingPathComponent("array.json")
        try Data("[{\"prompt\": \"a\", \"chosen\": \"b\", \"rejected\": \"c\"}]\n{\"prompt\": \"a\"}\n".utf8).write(to: array)

        let cases: [(String, String)] = [
            ("/dev/null", "/dev/null: not a regular file (a character device); give a JSONL or JSON file"),
            (root.path, "\(root.path): is a directory, not a file; give a JSONL or JSON file"),
            (file.path + "/x", "\(file.path)/x: file does not exist: \(file.path) is a file, not a directory"),
            (loop.path, "\(loop.path): symbolic link loop (a link on the path leads back to itself)"),
            (root.path + "/missing.jsonl", "\(root.path)/missing.jsonl: file does not exist"),
        ]
        for (path, expected) in cases {
            let text = problem(path)
            XCTAssertEqual(text, expected)
        }
        let text = problem(array.path)
        XCTAssertTrue(text.hasPrefix("\(array.path): malformed JSON array: "), text)
        XCTAssertTrue(text.contains("line 2"), text)
        XCTAssertTrue(text.hasSuffix("(a file is one JSON array or JSON Lines, one object per line, not both)"), text)
        for text in cases.map({ problem($0.0) }) + [text] {
            XCTAssertFalse(text.contains("NSCocoaErrorDomain") || text.contains("could not be completed") || text.contains("\n"), text)
        }
        XCTAssertEqual(FileProblem.directory(file.path), "is a file, not a directory")
        XCTAssertNil(FileProblem.directory(root.path))
        XCTAssertEqual(FileProblem.directory(root.path + "/none"), "no such directory")
    }
}
