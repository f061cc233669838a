import Foundation

// MARK: - Scopes

/// Variables visible at one point of a render. Jinja2's rules: a `for` iteration and a macro call open
/// a scope (a `set` inside stays inside); `if` does not. Lookups walk outwards to the globals.
final class TemplateScope {
    private var variables: [String: TemplateValue] = [:]
    let parent: TemplateScope?

    init(parent: TemplateScope?) {
        self.parent = parent
    }

    func lookup(_ name: String) -> TemplateValue? {
        var scope: TemplateScope? = self
        while let current = scope {
            if let value = current.variables[name] { return value }
            scope = current.parent
        }
        return nil
    }

    /// Assigns in this scope (shadowing outer ones, as `set` does).
    func set(_ name: String, _ value: TemplateValue) {
        variables[name] = value
    }
}

// MARK: - Limits

/// The sandbox's bounds: a template from the hub is untrusted code, so a render that runs away stops
/// with an error instead of hanging or filling memory.
public struct TemplateLimits: Sendable {
    /// Loop iterations over the whole render (all loops together).
    public var maxLoopIterations: Int
    /// Nested macro calls.
    public var maxCallDepth: Int
    /// Rendered text size in bytes.
    public var maxOutputBytes: Int

    public init(maxLoopIterations: Int = 1_000_000, maxCallDepth: Int = 100, maxOutputBytes: Int = 64 << 20) {
        self.maxLoopIterations = maxLoopIterations
        self.maxCallDepth = maxCallDepth
        self.maxOutputBytes = maxOutputBytes
    }
}
