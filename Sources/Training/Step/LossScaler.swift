/// Dynamic loss scaling for `--precision fp16` (as `torch.cuda.amp.GradScaler`).
///
/// The loss gradient is multiplied by `scale` before backward so small fp16 gradients do not
/// flush to zero; gradients are divided by it before clipping and the update. A step whose
/// gradients are not finite halves the scale and is skipped (weights and optimizer state
/// untouched); after `growthInterval` clean steps in a row the scale doubles.
/// Under fp32 the scale stays 1 and only the skipping applies.
public struct DynamicLossScaler: Codable, Equatable, Sendable {
    public private(set) var scale: Double
    public let growthInterval: Int
    public let enabled: Bool
    /// Clean steps since the last change of scale.
    public private(set) var cleanSteps: Int = 0
    /// Non-finite steps in a row (reset by a clean step); the trainer stops past `--max-skipped-steps`.
    public private(set) var consecutiveSkips: Int = 0
    /// All steps skipped so far.
    public private(set) var totalSkips: Int = 0

    public static let initialScale: Double = 65536  // 2^16
    public static let minimumScale: Double = 1.0 / 65536

    public init(enabled: Bool, initialScale: Double = DynamicLossScaler.initialScale, growthInterval: Int = 2000) {
        self.enabled = enabled
        self.scale = enabled ? initialScale : 1
        self.growthInterval = growthInterval
    }

    /// This scaler for a run resumed under another precision (`--allow-changed-config`): scaling
    /// switched on at the initial scale (fp32 -> fp16) or off (fp16 -> fp32); the skip counts kept.
    public func switched(enabled: Bool) -> DynamicLossScaler {
        guard enabled != self.enabled else { return self }
        var next = DynamicLossScaler(enabled: enabled, growthInterval: growthInterval)
        next.consecutiveSkips = consecutiveSkips
        next.totalSkips = totalSkips
        return next
    }

    /// Records the outcome of a step; returns whether its update may be applied.
    @discardableResult
    public mutating func update(gradientsFinite: Bool) -> Bool {
        if !gradientsFinite {
            consecutiveSkips += 1
            totalSkips += 1
            cleanSteps = 0
            if enabled { scale = max(scale / 2, Self.minimumScale) }
            return false
        }
        consecutiveSkips = 0
        cleanSteps += 1
        if enabled && cleanSteps >= growthInterval {
            scale *= 2
            cleanSteps = 0
        }
        return true
    }
}
