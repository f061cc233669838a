import Foundation
import XCTest
@testable import Templating

/// Byte-equal renderings against transformers' `apply_chat_template` (Fixtures/generate_golden.py):
/// every template style x conversation x add_generation_prompt, the templates' own refusals, and
/// tool-calling renderings (tool schemas through `tojson`, tool calls, tool results, a recursive macro).
final class GoldenRenderingTests: XCTestCase {
    static var fixtures: URL { Bundle.module.url(forResource: "Fixtures", withExtension: nil)! }
    static let fixedClock = TemplateClock.fixed(year: 2024, month: 7, day: 26, hour: 12)

    static func load(_ name: String) throws -> [TemplateDictionary] {
        let text = try String(contentsOf: fixtures.appendingPathComponent(name), encoding: .utf8)
        guard case .list(let cases) = try TemplateJSON.parse(text) else { throw XCTSkip("fixture \(name) is not a list") }
        return cases.compactMap { if case .dict(let d) = $0 { return d } else { return nil } }
    }

    func testChatTemplatesRenderLikeTransformers() throws {
        let cases = try Self.load("chat_golden.json")
        XCTAssertEqual(cases.count, 186)  // 10 templates x 9 conversations x 2, and 3 templates with tools x 2
        var templates = [String: Template]()
        var checked = 0, refusals = 0
        for testCase in cases {
            guard case .string(let file)? = testCase["template"], case .string(let conversation)? = testCase["conversation"] else {
                return XCTFail("malformed case")
            }
            if templates[file] == nil {
                let source = try String(contentsOf: Self.fixtures.appendingPathComponent(file), encoding: .utf8)
                templates[file] = try Template(source: source, name: file)
            }
            var variables: [String: TemplateValue] = ["messages": testCase["messages"]!, "tools": testCase["tools"] ?? .none,
                                                      "add_generation_prompt": testCase["add_generation_prompt"]!]
            for key in ["bos_token", "eos_token"] where testCase[key]?.isNone == false { variables[key] = testCase[key]! }
            let label = "\(file) \(conversation) add_generation_prompt=\(testCase["add_generation_prompt"]!.pythonString)"
            if case .string(let expected)? = testCase["expected"] {
                let rendered = try templates[file]!.render(variables, clock: Self.fixedClock)
                XCTAssertEqual(Array(rendered.utf8), Array(expected.utf8), "\(label):\n\(rendered)\n---\n\(expected)")
                checked += 1
            } else if case .string(let message)? = testCase["error"] {
                XCTAssertThrowsError(try templates[file]!.render(variables, clock: Self.fixedClock), label) { error in
                    guard let failure = error as? TemplateError else { return XCTFail("\(label): \(error)") }
                    XCTAssertEqual(failure.kind, .raised, label)
                    XCTAssertEqual(failure.message, message, label)
                    XCTAssertEqual(failure.template, file, label)
                    XCTAssertGreaterThan(failure.line, 0, label)
                }
                refusals += 1
            }
        }
        XCTAssertEqual(checked + refusals, cases.count)
        XCTAssertEqual(refusals, 4)  // mistral and gemma refuse the bad alternation, both ways
    }

    /// One construct per case (whitespace control, scoping, filters, tests, methods, errors).
    func testJinjaConstructsMatchJinja2() throws {
        for testCase in try Self.load("jinja_cases.json") {
            guard case .string(let source)? = testCase["template"], case .dict(let variablesDictionary)? = testCase["variables"] else {
                return XCTFail("malformed case")
            }
            var variables = [String: TemplateValue]()
            for (key, value) in variablesDictionary.pairs { variables[key] = value }
            if case .string(let expected)? = testCase["expected"] {
                do {
                    let rendered = try Template(source: source, name: "case").render(variables, clock: Self.fixedClock)
                    XCTAssertEqual(rendered, expected, "template: \(source)")
                    XCTAssertEqual(Array(rendered.utf8), Array(expected.utf8), "template: \(source)")
                } catch {
                    XCTFail("template: \(source): \(error)")
                }
            } else if case .string(let pythonError)? = testCase["error"] {
                XCTAssertThrowsError(try Template(source: source, name: "case").render(variables, clock: Self.fixedClock), source) { error in
                    guard let failure = error as? TemplateError else { return XCTFail("\(source): \(error)") }
                    let (pythonType, pythonMessage) = Self.splitPythonError(pythonError)
                    XCTAssertEqual(failure.kind, Self.expectedKind(pythonType, pythonMessage), "\(source): \(failure)")
                    if Self.expectedKind(pythonType, pythonMessage) == .runtime || pythonType == "TemplateError" {
                        XCTAssertTrue(failure.message.contains(pythonMessage), "\(source): '\(failure.message)' vs '\(pythonMessage)'")
                    }
                }
            } else {
                XCTFail("case without expected or error: \(source)")
            }
        }
    }

    static func splitPythonError(_ text: String) -> (String, String) {
        guard let colon = text.range(of: ": ") else { return (text, "") }
        return (String(text[..<colon.lowerBound]), String(text[colon.upperBound...]))
    }

    /// How this engine classifies each Jinja2 failure of the fixture.
    static func expectedKind(_ pythonType: String, _ message: String) -> TemplateError.Kind {
        switch pythonType {
        case "TemplateError": return .raised
        case "TemplateSyntaxError": return .syntax
        case "TemplateAssertionError": return .unsupported
        case "TypeError" where message.contains("no loader"): return .unsupported  // {% include %}
        default: return .runtime
        }
    }
}
