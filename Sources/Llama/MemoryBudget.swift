import Foundation

/// The one check every size computed from user input passes before it is allocated:
/// a `--vocab-size 100000000` or a config.json with a huge `hidden_size` must end in a
/// one-line error, not in "failed to allocate N bytes" and a backtrace (SIGABRT).
public enum MemoryBudget {
    /// Why an allocation was refused.
    public struct Exceeded: Error, CustomStringConvertible, LocalizedError {
        public var description: String
        public var errorDescription: String? { description }
    }

    /// Bytes this process may still allocate (`AvailableMemory.measured`: MemAvailable and every
    /// cgroup limit from this process's cgroup up); nil when none is known. `root`: a fake `/` (tests).
    public static func availableBytes(root: String = "") -> Int? {
        AvailableMemory.measured(root: root)?.bytes
    }

    /// Product of `factors` (element counts, bytes per element), nil on overflow or a negative factor.
    public static func product(_ factors: [Int]) -> Int? {
        var result = 1
        for factor in factors {
            guard factor >= 0 else { return nil }
            let (value, overflow) = result.multipliedReportingOverflow(by: factor)
            if overflow { return nil }
            result = value
        }
        return result
    }

    /// Throws when `bytes` (nil = overflowed) exceeds what is available. `what` names the
    /// allocation and the input it comes from, e.g. "the weights of --vocab-size 100000000".
    /// `source` names where `available` comes from (`AvailableMemory.source`), added to the message.
    public static func require(bytes: Int?, for what: String, available: Int? = availableBytes(), source: String? = nil) throws {
        guard let bytes else {
            throw Exceeded(description: "\(what) would need more bytes than a 64-bit size can count; use smaller sizes")
        }
        if let available, bytes > available {
            throw Exceeded(description: "\(what) need \(describe(bytes)), but only \(describe(available)) of memory is available; "
                + "use smaller sizes" + (source.map { " (available per \($0))" } ?? ""))
        }
    }

    /// "25.6 GB", "512.0 MB": decimal units, one decimal.
    public static func describe(_ bytes: Int) -> String {
        let units = ["bytes", "kB", "MB", "GB", "TB", "PB", "EB"]
        var value = Double(bytes), unit = 0
        while value >= 1000 && unit < units.count - 1 { value /= 1000; unit += 1 }
        return unit == 0 ? "\(bytes) bytes" : String(format: "%.1f %@", value, units[unit])
    }
}

extension LlamaConfig {
    /// Number of weights, nil if it overflows `Int` (every multiplication checked).
    public var parameterCountIfRepresentable: Int? { checkedParameterCount() }
}
