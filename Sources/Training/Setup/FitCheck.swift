import Distributed
import Foundation
import Llama

/// Before any weight is loaded: the estimated peak of one rank (`MemoryGeometry`, at rows of
/// `--max-length` tokens, the longest a batch can hold) against the memory available to it
/// (`AvailableMemory` shared by the ranks on this host). A run that would not fit is refused
/// with both figures and the flags that would make it fit; `--force` starts it anyway.
enum FitCheck {
    /// The estimate and the budget of one rank.
    struct Verdict {
        var estimate: ProgressStartupSummary.MemoryEstimate
        var available: AvailableMemory
        var ranksOnHost: Int
        var perRank: Int { available.bytes / max(1, ranksOnHost) }
        var fits: Bool { estimate.totalBytes <= perRank }
    }

    /// Runs the check on every rank (all refuse if one does); nil `available` (nothing readable) skips it.
    static func run(_ p: TrainingParameters, communicator: Communicator, events: TrainingEvents) throws {
        // An unreadable config.json is the loader's to report (it names the problem better).
        guard let config = try? ModelDirectory.loadConfig(URL(fileURLWithPath: p.modelDirectory)),
              let available = try AvailableMemory.current() else { return }
        let ranksOnHost = communicator.node.size
        let verdict = Verdict(estimate: geometry(p, config: config, ranksOnHost: ranksOnHost, worldSize: communicator.size).estimate(), available: available,
                              ranksOnHost: ranksOnHost)
        let anyRefuses = communicator.anyRank(!verdict.fits)
        guard anyRefuses else { return }
        if p.force {
            events.message("fit check: " + problem(verdict, p) + "; starting anyway (--force)")
            return
        }
        guard !verdict.fits else {
            throw TrainingError.memory("another rank estimates that this run does not fit in the memory available to it (see its message); --force starts anyway")
        }
        throw TrainingError.memory(refusal(verdict, p, config: config, worldSize: communicator.size))
    }

    /// The shapes of `p` on `config` before loading: rows as long as `--max-length`; with
    /// `--shared-reference` the reference weights count once per host of `ranksOnHost` ranks.
    /// With LoRA only the adapters are trained (and the reference is the base unless --ref-model);
    /// with `--zero 1` over `worldSize` ranks a rank keeps one shard of master weights and moments.
    static func geometry(_ p: TrainingParameters, config: LlamaConfig, ranksOnHost: Int = 1, worldSize: Int = 1) -> MemoryGeometry {
        let adapters = p.loraConfig.map { LoRALayout(model: config, lora: $0).totalCount }
        let trained = adapters ?? ParameterLayout(config: config).totalCount
        let held = p.zero == 1 ? (trained + worldSize - 1) / max(1, worldSize) : trained
        let reference: MemoryGeometry.Reference = !p.loss.needsReference ? .none : p.precomputeReference ? .cached(pairs: 0)
            : adapters != nil && p.referenceModelDirectory == nil ? .baseModel : .model
        return MemoryGeometry(
            config: config, precision: p.precision, batchPairs: p.batchPairs, longestRow: p.maxLength,
            gradientCheckpointing: p.gradientCheckpointing, optimizerStateCount: p.optimizer.kind == .adamw ? 2 * held : 0,
            reference: reference, referenceSharedBy: p.sharedReference && !p.precomputeReference ? max(1, ranksOnHost) : 1,
            trainableCount: adapters, masterCount: held)
    }

    /// "this run needs about X per rank at peak (...), but Y is available to each rank (...)".
    static func problem(_ v: Verdict, _ p: TrainingParameters) -> String {
        let e = v.estimate, b = ProgressStartupSummary.bytes
        let share = v.ranksOnHost > 1 ? " shared by \(v.ranksOnHost) ranks on this host" : ""
        return "this run needs about \(b(e.totalBytes)) per rank at peak (weights \(b(e.weightsBytes)), gradients and optimizer "
            + "\(b(e.optimizerBytes)), activations \(b(e.activationsBytes)) for \(p.batchPairs) pair(s) of rows up to --max-length "
            + "\(p.maxLength) tokens, reference \(b(e.referenceBytes))), but \(b(v.perRank)) is available to each rank "
            + "(\(v.available.source) \(b(v.available.bytes))\(share))"
    }

    /// The refusal: the problem and every flag (or, failing that, combination) that would make it fit.
    static func refusal(_ v: Verdict, _ p: TrainingParameters, config: LlamaConfig, worldSize: Int) -> String {
        var text = problem(v, p) + ". "
        let options = remedies(p, config: config, worldSize: worldSize, ranksOnHost: v.ranksOnHost, budget: v.perRank)
        if options.isEmpty {
            text += "No combination of --gradient-checkpointing true, --precision fp16, smaller --batch-pairs or --max-length fits; "
                + "use a host with more memory or more ranks on other hosts"
        } else {
            text += "Any of these would fit: " + options.joined(separator: "; ")
        }
        return text + ". Or add --force to start anyway."
    }

    /// Flag changes (each alone, else together) under which the estimate fits `budget`, with their estimates.
    static func remedies(_ p: TrainingParameters, config: LlamaConfig, worldSize: Int, ranksOnHost: Int, budget: Int) -> [String] {
        func total(_ q: TrainingParameters) -> Int { geometry(q, config: config, ranksOnHost: ranksOnHost, worldSize: worldSize).estimate().totalBytes }
        func described(_ flags: String, _ q: TrainingParameters) -> String { "\(flags) (~\(ProgressStartupSummary.bytes(total(q))))" }
        var found: [String] = []
        // Switches that shrink a part without changing the batch.
        var switches: [(flags: String, apply: (inout TrainingParameters) -> Void)] = []
        if !p.gradientCheckpointing { switches.append(("--gradient-checkpointing true", { $0.gradientCheckpointing = true })) }
        if p.precision == .fp32 { switches.append(("--precision fp16", { $0.precision = .fp16 })) }
        for (flags, apply) in switches {
            var q = p
            apply(&q)
            if total(q) <= budget { found.append(described(flags, q)) }
        }
        found += batchRemedies(p, prefix: "", total: total, budget: budget)
        found += otherHelpersRemedies(p, config: config, worldSize: worldSize, budget: budget, total: total(p))
        if !p.sharedReference, p.loss.needsReference, !p.precomputeReference, ranksOnHost > 1 {
            var q = p
            q.sharedReference = true
            if total(q) <= budget { found.append(described("--shared-reference true", q)) }
        }
        if found.isEmpty, !switches.isEmpty {
            var q = p
            for (_, apply) in switches { apply(&q) }
            let prefix = switches.map(\.flags).joined(separator: " ")
            if total(q) <= budget { found.append(described(prefix, q)) }
            found += batchRemedies(q, prefix: prefix + " ", total: total, budget: budget)
        }
        return found
    }

    /// The largest `--batch-pairs` and the largest `--max-length` (each alone) that fit.
    static func batchRemedies(_ p: TrainingParameters, prefix: String, total: (TrainingParameters) -> Int, budget: Int) -> [String] {
        var found: [String] = []
        func largest(below upper: Int, lowest: Int, _ set: (inout TrainingParameters, Int) -> Void) -> (Int, Int)? {
            // Memory grows with both: binary search for the largest value in lowest..<upper that fits.
            var q = p
            set(&q, lowest)
            guard upper > lowest, total(q) <= budget else { return nil }
            var low = lowest, high = upper - 1
            while low < high {
                let middle = (low + high + 1) / 2
                set(&q, middle)
                if total(q) <= budget { low = middle } else { high = middle - 1 }
            }
            set(&q, low)
            return (low, total(q))
        }
        if let (pairs, bytes) = largest(below: p.batchPairs, lowest: 1, { $0.batchPairs = $1 }) {
            found.append("\(prefix)--batch-pairs \(pairs) (~\(ProgressStartupSummary.bytes(bytes)); raise --grad-accum to keep the global batch)")
        }
        if let (length, bytes) = largest(below: p.maxLength, lowest: 2, { $0.maxLength = $1 }) {
            found.append("\(prefix)--max-length \(length) (~\(ProgressStartupSummary.bytes(bytes)); longer pairs are truncated)")
        }
        return found
    }

    /// `--zero 1` and `--lora-r`, offered when this build has them (other parts of the trainer add them):
    /// ZeRO-1 keeps 1/world of the master weights and optimizer state, LoRA neither (nor full gradients).
    static func otherHelpersRemedies(_ p: TrainingParameters, config: LlamaConfig, worldSize: Int, budget: Int, total: Int) -> [String] {
        let names = Set(TrainingParameters.options.map(\.name))
        let e = geometry(p, config: config).estimate()
        let parameters = ParameterLayout(config: config).totalCount
        let masterAndState = parameters * 4 + (e.optimizerBytes - parameters * 4)
        var found: [String] = []
        if names.contains("zero"), worldSize > 1 {
            let bytes = total - masterAndState + masterAndState / worldSize
            if bytes <= budget { found.append("--zero 1 (~\(ProgressStartupSummary.bytes(bytes)))") }
        }
        if names.contains("lora-r") {
            // Adapters only: no fp32 master copy, full gradients or optimizer state (the adapters themselves are small).
            let bytes = total - masterAndState - parameters * 4
            if bytes <= budget { found.append("--lora-r 16 (~\(ProgressStartupSummary.bytes(bytes)), adapters only)") }
        }
        return found
    }
}
