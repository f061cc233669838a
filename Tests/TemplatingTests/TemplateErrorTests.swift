import Foundation
import XCTest
@testable import Templating

/// Errors name the template, its line and what went wrong; the sandbox bounds stop runaway renders.
final class TemplateErrorTests: XCTestCase {
    private func failure(_ source: String, _ variables: [String: TemplateValue] = [:],
                         limits: TemplateLimits = TemplateLimits()) -> TemplateError? {
        do {
            _ = try Template(source: source, name: "model/chat_template.jinja").render(variables, limits: limits)
            XCTFail("expected an error from: \(source)")
            return nil
        } catch let error as TemplateError {
            return error
        } catch {
            XCTFail("not a TemplateError: \(error)")
            return nil
        }
    }

    func testRaiseExceptionReachesTheUserWithFileAndLine() throws {
        let source = "{% for message in messages %}\n{% if message.role == 'system' %}\n{{ raise_exception('System role not supported') }}\n{% endif %}\n{% endfor %}"
        let messages = TemplateValue.list([.dict(TemplateDictionary([("role", .string("system")), ("content", .string("x"))]))])
        let error = try XCTUnwrap(failure(source, ["messages": messages]))
        XCTAssertEqual(error.kind, .raised)
        XCTAssertEqual(error.message, "System role not supported")
        XCTAssertEqual(error.line, 3)
        XCTAssertEqual(error.description,
                       "model/chat_template.jinja:3: the chat template refused the messages: System role not supported")
    }

    func testUnsupportedTagIsRefusedByName() throws {
        let error = try XCTUnwrap(failure("line one\n{% extends 'base.jinja' %}"))
        XCTAssertEqual(error.kind, .unsupported)
        XCTAssertEqual(error.line, 2)
        XCTAssertTrue(error.description.contains("{% extends %}"), error.description)
        XCTAssertTrue(error.description.hasPrefix("model/chat_template.jinja:2:"), error.description)
    }

    func testUnknownFilterIsRefusedBeforeRenderingEvenInAnUntakenBranch() throws {
        XCTAssertThrowsError(try Template(source: "{% if false %}\n{{ x | frobnicate }}{% endif %}", name: "t.jinja")) { error in
            let failure = error as? TemplateError
            XCTAssertEqual(failure?.kind, .unsupported)
            XCTAssertEqual(failure?.line, 2)
            XCTAssertTrue(failure?.description.contains("'frobnicate'") ?? false)
        }
    }

    func testSyntaxErrorNamesTheLine() throws {
        let error = try XCTUnwrap(failure("ok\n{% if x %}\nmissing end"))
        XCTAssertEqual(error.kind, .syntax)
        XCTAssertTrue(error.message.contains("endif"), error.message)
        let unclosed = try XCTUnwrap(failure("a\nb {{ x + }}"))
        XCTAssertEqual(unclosed.kind, .syntax)
        XCTAssertEqual(unclosed.line, 2)
    }

    func testLoopIterationBoundStopsRunawayLoops() throws {
        let source = "{% for i in range(1000) %}{% for j in range(1000) %}.{% endfor %}{% endfor %}"
        let error = try XCTUnwrap(failure(source, limits: TemplateLimits(maxLoopIterations: 10_000)))
        XCTAssertEqual(error.kind, .limit)
        XCTAssertTrue(error.message.contains("10000 loop iterations"), error.message)
        let huge = try XCTUnwrap(failure("{% for i in range(10 ** 12) %}{% endfor %}"))
        XCTAssertEqual(huge.kind, .limit)
    }

    func testRecursionBoundStopsRunawayMacros() throws {
        let source = "{% macro down(n) %}{{ down(n + 1) }}{% endmacro %}\n{{ down(0) }}"
        let error = try XCTUnwrap(failure(source, limits: TemplateLimits(maxCallDepth: 20)))
        XCTAssertEqual(error.kind, .limit)
        XCTAssertTrue(error.message.contains("deeper than 20"), error.message)
    }

    func testAttributeOfUndefinedIsAnErrorButUndefinedRendersEmpty() throws {
        XCTAssertEqual(try Template(source: "[{{ nothing }}]{% if nothing %}x{% endif %}{% for i in nothing %}y{% endfor %}",
                                    name: "t").render([:]), "[]")
        let error = try XCTUnwrap(failure("\n{{ nothing.content }}"))
        XCTAssertEqual(error.kind, .runtime)
        XCTAssertEqual(error.line, 2)
        XCTAssertEqual(error.message, "'nothing' is undefined")
    }

    func testSandboxRefusesMutatingInputs() throws {
        let error = try XCTUnwrap(failure("{{ messages.append(1) }}", ["messages": .list([])]))
        XCTAssertTrue(error.message.contains("unsafe"), error.message)
    }
}
