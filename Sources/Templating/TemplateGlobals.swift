import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Clock for strftime_now

/// The time `strftime_now` formats: the system's local time, or a fixed wall-clock time (tests and
/// reproducible renders: Llama-3.1 templates print "Today Date: 26 Jul 2024").
public enum TemplateClock: Sendable, Equatable {
    case system
    case fixed(year: Int, month: Int, day: Int, hour: Int = 0, minute: Int = 0, second: Int = 0)

    /// C's broken-down time (weekday and day of year filled in).
    var brokenDownTime: tm {
        var result = tm()
        switch self {
        case .system:
            var now = time(nil)
            localtime_r(&now, &result)
        case .fixed(let year, let month, let day, let hour, let minute, let second):
            var fields = tm()
            fields.tm_year = Int32(year - 1900)
            fields.tm_mon = Int32(month - 1)
            fields.tm_mday = Int32(day)
            fields.tm_hour = Int32(hour)
            fields.tm_min = Int32(minute)
            fields.tm_sec = Int32(second)
            var seconds = timegm(&fields)
            gmtime_r(&seconds, &result)
        }
        return result
    }

    /// `format` through C's `strftime`, which Python's `datetime.strftime` calls on Linux.
    func format(_ format: String) -> String {
        var time = brokenDownTime
        var buffer = [Int8](repeating: 0, count: 1024)
        let count = strftime(&buffer, buffer.count, format, &time)
        return String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

// MARK: - Globals

/// The global functions transformers' environment offers chat templates.
enum TemplateGlobals {
    static func functions(evaluator: TemplateEvaluator, clock: TemplateClock) -> [String: TemplateValue] {
        var globals = [String: TemplateValue]()
        func define(_ name: String, _ body: @escaping TemplateFunction.Body) {
            globals[name] = .function(TemplateFunction(name: name, body: body))
        }
        define("raise_exception") { arguments in
            throw TemplateError(.raised, arguments.value(0, "message")?.pythonString ?? "")
        }
        define("strftime_now") { arguments in
            guard case .string(let format)? = arguments.value(0, "format") else {
                throw TemplateError(.runtime, "strftime_now takes a format string")
            }
            return .string(clock.format(format))
        }
        define("namespace") { arguments in
            var attributes = TemplateDictionary()
            if case .dict(let initial)? = arguments.positional.first { attributes = initial }
            for (name, value) in arguments.keyword { attributes[name] = value }
            return .namespace(TemplateNamespace(attributes))
        }
        define("dict") { arguments in
            var dictionary = TemplateDictionary()
            if case .dict(let initial)? = arguments.positional.first { dictionary = initial }
            for (name, value) in arguments.keyword { dictionary[name] = value }
            return .dict(dictionary)
        }
        define("range") { [unowned evaluator] arguments in try range(arguments, evaluator: evaluator) }
        return globals
    }

    /// Python's `range(stop)` / `range(start, stop[, step])` as a list, refused beyond the loop bound.
    private static func range(_ arguments: TemplateArguments, evaluator: TemplateEvaluator) throws -> TemplateValue {
        let numbers = try arguments.positional.map { value -> Int in
            guard let integer = value.integer else { throw TemplateError(.runtime, "range() takes integers, not \(value.typeName)") }
            return integer
        }
        let (start, stop, step): (Int, Int, Int)
        switch numbers.count {
        case 1: (start, stop, step) = (0, numbers[0], 1)
        case 2: (start, stop, step) = (numbers[0], numbers[1], 1)
        case 3: (start, stop, step) = (numbers[0], numbers[1], numbers[2])
        default: throw TemplateError(.runtime, "range() takes 1 to 3 integers")
        }
        guard step != 0 else { throw TemplateError(.runtime, "range() arg 3 must not be zero") }
        let count = step > 0 ? max(0, (stop - start + step - 1) / step) : max(0, (start - stop - step - 1) / -step)
        guard count <= evaluator.limits.maxLoopIterations else {
            throw TemplateError(.limit, "range() of \(count) items exceeds the sandbox's \(evaluator.limits.maxLoopIterations) loop iterations")
        }
        return .list(Swift.stride(from: start, to: stop, by: step).map { .int($0) })
    }
}
