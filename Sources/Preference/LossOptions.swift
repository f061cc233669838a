/// Which preference objective to optimise, and its knobs (docs/ARCHITECTURE.md, The loss family).
///
/// The raw values are the `--loss` names, the same as TRL's `loss_type`.
public enum PreferenceLossKind: String, CaseIterable, Codable, Sendable {
    case sigmoid
    case ipo
    case hinge
    case robust
    case bcoPair = "bco_pair"
    case sppoHard = "sppo_hard"
    case ncaPair = "nca_pair"
    case apoZero = "apo_zero"
    case apoDown = "apo_down"
    case exoPair = "exo_pair"
    case sft

    /// Losses whose formula contains the label smoothing `e`.
    public var usesLabelSmoothing: Bool {
        switch self {
        case .sigmoid, .robust, .exoPair: return true
        default: return false
        }
    }

    /// IPO works on length-averaged log-probs whatever `--average-logps` says (as TRL does).
    public var alwaysAveragesLogps: Bool { self == .ipo }
}

/// The options of the loss family.
public struct PreferenceLossOptions: Codable, Equatable, Sendable {
    /// The objective (`--loss`, default `sigmoid` = DPO).
    public var kind: PreferenceLossKind = .sigmoid
    /// Temperature of the implicit reward, beta > 0 (`--beta`, default 0.1).
    public var beta: Double = 0.1
    /// `e` of docs/ARCHITECTURE.md, The loss family, in [0, 0.5) (`--label-smoothing`, default 0).
    /// Only `sigmoid` (conservative DPO), `robust` and `exo_pair` (which needs e > 0) use it.
    public var labelSmoothing: Double = 0
    /// Weight of the chosen NLL added to the loss (`--rpo-alpha`, default 0 = off).
    public var rpoAlpha: Double = 0
    /// Treat the reference log-probs as 0 (`--reference-free`, default off).
    public var referenceFree: Bool = false
    /// Divide every sequence log-prob by its completion length (`--average-logps`, default off).
    public var averageLogps: Bool = false

    public init(
        kind: PreferenceLossKind = .sigmoid, beta: Double = 0.1, labelSmoothing: Double = 0,
        rpoAlpha: Double = 0, referenceFree: Bool = false, averageLogps: Bool = false
    ) {
        self.kind = kind
        self.beta = beta
        self.labelSmoothing = labelSmoothing
        self.rpoAlpha = rpoAlpha
        self.referenceFree = referenceFree
        self.averageLogps = averageLogps
    }

    /// Whether sequence log-probs enter the loss divided by their completion length.
    public var usesAveragedLogps: Bool { averageLogps || kind.alwaysAveragesLogps }

    /// Whether the loss needs the reference model at all.
    public var needsReference: Bool { !referenceFree && kind != .sft }

    /// Refuses option values the formulas are not defined for.
    public func validate() throws {
        guard beta.isFinite, beta > 0 else {
            throw PreferenceLossError.invalidOption("--beta must be a finite number > 0, got \(beta)")
        }
        guard labelSmoothing.isFinite, labelSmoothing >= 0, labelSmoothing < 0.5 else {
            throw PreferenceLossError.invalidOption(
                "--label-smoothing must be in [0, 0.5), got \(labelSmoothing)")
        }
        if labelSmoothing > 0 && !kind.usesLabelSmoothing {
            throw PreferenceLossError.invalidOption(
                "--label-smoothing \(labelSmoothing) has no effect with --loss \(kind.rawValue); "
                    + "it applies to sigmoid, robust and exo_pair only (leave it at 0)")
        }
        if kind == .exoPair && labelSmoothing <= 0 {
            throw PreferenceLossError.invalidOption(
                "--loss exo_pair needs --label-smoothing > 0 (its formula takes log e); try 1e-3")
        }
        guard rpoAlpha.isFinite, rpoAlpha >= 0 else {
            throw PreferenceLossError.invalidOption("--rpo-alpha must be a finite number >= 0, got \(rpoAlpha)")
        }
    }
}

/// Why a loss could not be computed.
public enum PreferenceLossError: Error, Equatable, CustomStringConvertible {
    case invalidOption(String)
    case shapeMismatch(String)

    public var description: String {
        switch self {
        case .invalidOption(let message): return "invalid loss option: \(message)"
        case .shapeMismatch(let message): return "loss inputs do not match: \(message)"
        }
    }
}
