import Foundation

// MARK: - What the trainer reports

/// The state of training at one step, as the progress display shows it.
public struct ProgressSnapshot: Sendable {
    /// Optimizer steps done so far (1-based after the first step).
    public var step: Int
    public var totalSteps: Int
    /// Fractional epoch (TRL's `epoch`).
    public var epoch: Double
    /// `loss`: like the reward figures and the rate, the `--log-every` window's average, the
    /// figure metrics.jsonl records for this step (between logged steps, the window so far).
    public var loss: Double
    /// `rewards/accuracies` (NaN, and not shown, for `--loss sft`, which has no rewards).
    public var rewardAccuracy: Double
    /// `rewards/margins`.
    public var rewardMargin: Double
    /// Training tokens (chosen + rejected, all ranks) per second over the window (`tokens_per_second`).
    public var tokensPerSecond: Double
    /// Seconds since the training loop started (after start-up and any resume).
    public var elapsedSeconds: Double
    /// The step this run started from (the checkpoint step when resuming, else 0), so the ETA
    /// uses only this run's speed: `elapsedSeconds / (step - startStep)` per step.
    public var startStep: Int

    public init(step: Int, totalSteps: Int, epoch: Double, loss: Double, rewardAccuracy: Double,
                rewardMargin: Double, tokensPerSecond: Double, elapsedSeconds: Double, startStep: Int = 0) {
        self.step = step
        self.totalSteps = totalSteps
        self.epoch = epoch
        self.loss = loss
        self.rewardAccuracy = rewardAccuracy
        self.rewardMargin = rewardMargin
        self.tokensPerSecond = tokensPerSecond
        self.elapsedSeconds = elapsedSeconds
        self.startStep = startStep
    }
}

// MARK: - Reporter

/// Shows training progress on rank 0: on a terminal a bar redrawn in place with `\r`, otherwise
/// one plain line per `update`. The library never prints: the CLI passes the output stream.
///
///     let reporter = ProgressReporter(output: FileHandleOutputStream(.standardError),
///                                     mode: .detect(fileDescriptor: STDERR_FILENO),
///                                     width: ProgressMode.terminalColumns(fileDescriptor: STDERR_FILENO) ?? 100,
///                                     plainEvery: parameters.logEvery)
///     reporter.update(snapshot)   // every step; plain mode writes every `plainEvery` steps
///     reporter.message("saved checkpoint-100")
///     reporter.finish()
public final class ProgressReporter {
    public let mode: ProgressMode
    /// Characters available for the bar line (interactive mode).
    public let width: Int
    /// Plain mode writes a line only every this many steps (`--log-every`) and at the last step.
    public let plainEvery: Int
    private var output: TextOutputStream
    private var lastLine: String?

    /// - Parameters:
    ///   - width: the terminal's columns (`ProgressMode.terminalColumns(fileDescriptor:)`).
    ///   - plainEvery: in plain mode, write a line only at steps that are multiples of this
    ///     (pass `--log-every`) and at the last step; the trainer may call `update` every step.
    public init(output: TextOutputStream, mode: ProgressMode, width: Int = 100, plainEvery: Int = 1) {
        self.output = output
        self.mode = mode
        self.width = max(40, width)
        self.plainEvery = max(1, plainEvery)
    }

    /// Draws the bar (interactive, every call) or writes one line (plain, every `plainEvery` steps).
    public func update(_ snapshot: ProgressSnapshot) {
        switch mode {
        case .interactive:
            let line = Self.barLine(snapshot, width: width)
            output.write("\r" + line + "\u{1B}[K")
            lastLine = line
        case .plain:
            guard snapshot.step % plainEvery == 0 || snapshot.step >= snapshot.totalSteps else { return }
            output.write(Self.plainLine(snapshot) + "\n")
        }
    }

    /// Writes a line of text (e.g. an eval result) without breaking the bar: on a terminal
    /// the bar is cleared, the message written, and the bar redrawn below it.
    public func message(_ text: String) {
        switch mode {
        case .interactive:
            output.write("\r\u{1B}[K" + text + "\n")
            if let lastLine { output.write(lastLine + "\u{1B}[K") }
        case .plain:
            output.write(text + "\n")
        }
    }

    /// Ends the bar with a newline (interactive); nothing to do in plain mode.
    public func finish() {
        if mode == .interactive, lastLine != nil { output.write("\n") }
        lastLine = nil
    }

    // MARK: - Formatting

    /// Seconds left, from this run's average step time; nil before the first step of this run.
    public static func etaSeconds(_ snapshot: ProgressSnapshot) -> Double? {
        let stepsDone = snapshot.step - snapshot.startStep
        guard stepsDone > 0, snapshot.elapsedSeconds >= 0 else { return nil }
        let remaining = max(0, snapshot.totalSteps - snapshot.step)
        return snapshot.elapsedSeconds / Double(stepsDone) * Double(remaining)
    }

    /// ` 42/200 [#####.....]  21% epoch 0.42 loss 0.6512 acc 0.625 margin 0.0310 1234 tok/s 00:35<02:10`,
    /// the bar sized (and on a narrow terminal the line cut) so it fits in `width - 1` characters.
    public static func barLine(_ snapshot: ProgressSnapshot, width: Int) -> String {
        let total = max(1, snapshot.totalSteps)
        let fraction = min(1, max(0, Double(snapshot.step) / Double(total)))
        let counter = pad(String(snapshot.step), to: String(total).count) + "/\(total)"
        let percent = pad(String(Int((fraction * 100).rounded(.down))), to: 3) + "%"
        let eta = etaSeconds(snapshot).map(duration) ?? "?"
        let fields = "epoch \(fixed(snapshot.epoch, 2)) loss \(fixed(snapshot.loss, 4))" + rewardFields(snapshot)
            + " \(rate(snapshot.tokensPerSecond)) tok/s \(duration(snapshot.elapsedSeconds))<\(eta)"
        let fixedWidth = counter.count + 4 + percent.count + 1 + fields.count
        // One column stays free: a line that fills the terminal exactly can wrap on some terminals,
        // and a wrapped line cannot be redrawn with \r.
        let barWidth = max(10, min(30, width - 1 - fixedWidth))
        let filled = Int((fraction * Double(barWidth)).rounded(.down))
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: barWidth - filled)
        let line = "\(counter) [\(bar)] \(percent) \(fields)"
        return line.count < width ? line : String(line.prefix(width - 1))
    }

    /// `step 42/200 epoch 0.42 loss 0.6512 acc 0.625 margin 0.0310 tok/s 1234 elapsed 00:35 eta 02:10`.
    public static func plainLine(_ snapshot: ProgressSnapshot) -> String {
        let eta = etaSeconds(snapshot).map(duration) ?? "?"
        return "step \(snapshot.step)/\(snapshot.totalSteps) epoch \(fixed(snapshot.epoch, 2))"
            + " loss \(fixed(snapshot.loss, 4))" + rewardFields(snapshot) + " tok/s \(rate(snapshot.tokensPerSecond))"
            + " elapsed \(duration(snapshot.elapsedSeconds)) eta \(eta)"
    }

    /// ` acc 0.625 margin 0.0310`; nothing when the loss has no rewards (`--loss sft` reports NaN for both).
    static func rewardFields(_ snapshot: ProgressSnapshot) -> String {
        if snapshot.rewardAccuracy.isNaN && snapshot.rewardMargin.isNaN { return "" }
        return " acc \(fixed(snapshot.rewardAccuracy, 3)) margin \(fixed(snapshot.rewardMargin, 4))"
    }

    /// `mm:ss`, or `h:mm:ss` from one hour.
    public static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "?" }
        let whole = Int(seconds.rounded())
        let hours = whole / 3600, minutes = (whole % 3600) / 60, secs = whole % 60
        let mmss = String(format: "%02d:%02d", minutes, secs)
        return hours > 0 ? "\(hours):" + mmss : mmss
    }

    static func fixed(_ value: Double, _ digits: Int) -> String {
        value.isFinite ? String(format: "%.\(digits)f", value) : (value.isNaN ? "nan" : (value > 0 ? "inf" : "-inf"))
    }

    static func rate(_ value: Double) -> String {
        guard value.isFinite else { return "?" }
        return value >= 100 ? String(Int(value.rounded())) : String(format: "%.1f", value)
    }

    static func pad(_ text: String, to count: Int) -> String {
        String(repeating: " ", count: max(0, count - text.count)) + text
    }
}
