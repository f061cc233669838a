import Foundation
import XCTest
@testable import DPOTools
@testable import Training

/// The experiments' table: aligned text, Markdown, JSON, missing values.
final class ExperimentTableTests: XCTestCase {

    private func sample() -> ExperimentTable {
        var table = ExperimentTable(experiment: "beta-sweep", caption: "Caption.", columns: ["beta", "margin"], decimals: [2, 3])
        table.append("beta-0.1", [0.1, 1.23456])
        table.append("beta-1.0", [1.0, nil])
        return table
    }

    func testLinesAreAlignedWithMissingValuesAsDash() {
        XCTAssertEqual(sample().lines, [
            "Caption.",
            "run       beta  margin",
            "beta-0.1  0.10   1.235",
            "beta-1.0  1.00       -",
        ])
    }

    func testMarkdownTable() {
        XCTAssertEqual(sample().markdown, """
            # dpo experiment beta-sweep

            Caption.

            | run | beta | margin |
            |---|---:|---:|
            | beta-0.1 | 0.10 | 1.235 |
            | beta-1.0 | 1.00 | - |

            """)
    }

    func testFilesRoundTrip() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("dpo-table-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        try sample().write(into: directory)
        let decoded = try JSONDecoder().decode(ExperimentTable.self, from: Data(contentsOf: directory.appendingPathComponent("beta-sweep.json")))
        XCTAssertEqual(decoded.rowNames, ["beta-0.1", "beta-1.0"])
        XCTAssertEqual(decoded.rows[0][1], 1.23456)
        XCTAssertNil(decoded.rows[1][1])
        XCTAssertTrue(FileManager.default.fileExists(atPath: directory.appendingPathComponent("beta-sweep.md").path))
    }
}
