import Distributed
import Foundation
import Llama
import Preference

/// Before any weight is loaded (the data already encoded): the estimated peak of one rank
/// (`MemoryGeometry` at the batch geometry that will run: the longest row of the encoded data,
/// at most `--max-length`, and the pairs a rank's micro-batch holds) against the memory
/// available to it (`AvailableMemory` shared by the ranks on this host). A run that would not
/// fit is refused with both figures and the flags that would make it fit; `--force` starts it anyway.
enum FitCheck {
    /// The batch the encoded data gives: `--batch-pairs` rows of its longest row, or fewer
    /// pairs when a rank's share of the data is smaller. Nil in `geometry` = rows of `--max-length`.
    struct DataRows: Equatable {
        /// Tokens of the longest encoded row (prompt + longer completion).
        var longestRow: Int
        /// Pairs one rank has in an epoch (ceil(pairs / world size)).
        var pairsPerRank: Int

        init(longestRow: Int, pairsPerRank: Int) {
            self.longestRow = longestRow
            self.pairsPerRank = pairsPerRank
        }

        init(_ pairs: [EncodedPair], worldSize: Int) {
            longestRow = pairs.map(\.longestRowLength).max() ?? 0
            pairsPerRank = (pairs.count + max(1, worldSize) - 1) / max(1, worldSize)
        }

        /// The micro-batch of `p` on this data: (pairs, longest row tokens).
        func batch(_ p: TrainingParameters) -> (pairs: Int, longestRow: Int) {
            (max(1, min(p.batchPairs, pairsPerRank)), max(1, min(p.maxLength, longestRow)))
        }
    }

    /// The estimate and the budget of one rank.
    struct Verdict {
        var estimate: ProgressStartupSummary.MemoryEstimate
        var available: AvailableMemory
        var ranksOnHost: Int
        /// The data's batch geometry the estimate assumed (nil: rows of `--max-length`).
        var data: DataRows? = nil
        var perRank: Int { available.bytes / max(1, ranksOnHost) }
        var fits: Bool { estimate.totalBytes <= perRank }
    }

    /// Runs the check on every rank (all refuse if one does); nil `available` (nothing readable) skips it.
    /// `data`: the encoded training pairs, whose longest batch sets the activations.
    static func run(_ p: TrainingParameters, config: LlamaConfig, data: DataRows, communicator: Communicator, events: TrainingEvents) throws {
        guard let available = try AvailableMemory.current() else { return }
        let ranksOnHost = communicator.node.size
        let verdict = Verdict(
            estimate: geometry(p, config: config, ranksOnHost: ranksOnHost, worldSize: communicator.size, data: data).estimate(),
            available: available, ranksOnHost: ranksOnHost, data: data)
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

    /// The shapes of `p` on `config` before loading: rows of `data`'s longest batch (nil: as long as `--max-length`); with
    /// `--shared-reference` the reference weights count once per host of `ranksOnHost` ranks.
    /// With LoRA only the adapters are trained (and the reference is the base unless --ref-model);
    /// with `--zero 1` over `worldSize` ranks a rank keeps one shard of master weights and moments,
    /// with `--zero 2` of the gradients too.
    static func geometry(_ p: TrainingParameters, config: LlamaConfig, ranksOnHost: Int = 1, worldSize: Int = 1,
                         data: DataRows? = nil) -> MemoryGeometry {
        let adapters = p.loraConfig.map { LoRALayout(model: config, lora: $0).totalCount }
        let trained = adapters ?? ParameterLayout(config: config).totalCount
        let held = p.zero != 0 ? (trained + worldSize - 1) / max(1, worldSize) : trained
        let reference: MemoryGeometry.Reference = !p.loss.needsReference ? .none : p.precomputeReference ? .cached(pairs: 0)
            : adapters != nil && p.referenceModelDirectory == nil ? .baseModel : .model
        let batch = data?.batch(p) ?? (pairs: p.batchPairs, longestRow: p.maxLength)
        var geometry = MemoryGeometry(
            config: config, precision: p.precision, batchPairs: batch.pairs, longestRow: batch.longestRow,
            gradientCheckpointing: p.gradientCheckpointing, optimizerStateCount: p.optimizer.kind == .adamw ? 2 * held : 0,
            reference: reference, referenceSharedBy: p.sharedReference && !p.precomputeReference ? max(1, ranksOnHost) : 1,
            trainableCount: adapters, masterCount: held)
        geometry.reductionBytes = reductionBytes(p, trained: trained, worldSize: worldSize)
        if p.zero == 2, worldSize > 1, adapters == nil {
            geometry.gradientCount = partitionedGradientCount(p, config: config, trained: trained, worldSize: worldSize, tokens: geometry.tokens)
        }
        return geometry
    }

    /// `--zero 2`'s fp32 gradients on one rank (`PartitionedGradients`): the shard, plus the
    /// window pages written and not yet sent at once: the larger of a bucket and a group (backward
    /// writes a group whole before its buckets go; the LM head, tied or untied, is not counted in
    /// its group: it goes a bucket at a time as its vocabulary panels finish), with fp32 on the
    /// wire two more buckets in flight, and the embedding rows the batch's tokens touch.
    static func partitionedGradientCount(_ p: TrainingParameters, config: LlamaConfig, trained: Int, worldSize: Int, tokens: Int) -> Int {
        let layout = ParameterLayout(config: config)
        let wire = p.allreduceDType ?? (p.precision == .fp16 ? .fp16 : .fp32)
        let bucket = min(trained, Int(p.resolvedBucketMegabytes * 1024 * 1024) / wire.bytes)
        // The last group less an untied head (lm_head), which does not stay whole in the window.
        let groups = layout.groupRanges.dropFirst().map(\.count)
        let untiedHead = layout["lm_head.weight"]?.count ?? 0
        let largestGroup = (groups.dropLast() + [(groups.last ?? 0) - untiedHead]).max() ?? 0
        let window = max(bucket, largestGroup) + (wire == .fp32 ? 2 * bucket : 0) + min(tokens, config.vocabSize) * config.hiddenSize
        return (trained + worldSize - 1) / worldSize + min(trained, window)
    }

    /// The gradient reduction's buffers on several ranks: with fp16 on the wire (`--allreduce-dtype`,
    /// fp16 by default under fp16) two buckets of `--bucket-mb` staged (each with the part this
    /// rank receives under `--zero 1|2`); with fp32 and `--zero 1`, the shard's mean gradients;
    /// with fp32 and `--zero 2`, two receive slots of a bucket's shard part (the shard itself is
    /// among the gradients, `partitionedGradientCount`).
    static func reductionBytes(_ p: TrainingParameters, trained: Int, worldSize: Int) -> Int {
        guard worldSize > 1 else { return 0 }
        let shard = (trained + worldSize - 1) / worldSize
        guard (p.allreduceDType ?? (p.precision == .fp16 ? .fp16 : .fp32)) == .fp16 else {
            switch p.zero {
            case 1: return shard * 4
            case 2: return 2 * min(shard, Int(p.resolvedBucketMegabytes * 1024 * 1024) / 4) * 4
            default: return 0
            }
        }
        let bucket = min(trained, Int(p.resolvedBucketMegabytes * 1024 * 1024) / 2)
        return 2 * 2 * (bucket + (p.zero != 0 ? min(bucket, shard) : 0))
    }

    /// "this run needs about X per rank at peak (...), but Y is available to each rank (...)".
    static func problem(_ v: Verdict, _ p: TrainingParameters) -> String {
        let e = v.estimate, b = ProgressStartupSummary.bytes
        let share = v.ranksOnHost > 1 ? " shared by \(v.ranksOnHost) ranks on this host" : ""
        let rows: String
        if let data = v.data {
            let batch = data.batch(p)
            rows = "\(batch.pairs) pair(s) of rows of \(batch.longestRow) tokens (the longest batch of the encoded data; --max-length \(p.maxLength))"
        } else {
            rows = "\(p.batchPairs) pair(s) of rows up to --max-length \(p.maxLength) tokens"
        }
        return "this run needs about \(b(e.totalBytes)) per rank at peak (weights \(b(e.weightsBytes)), gradients and optimizer "
            + "\(b(e.optimizerBytes)), activations \(b(e.activationsBytes)) for \(rows), reference \(b(e.referenceBytes))), "
            + "but \(b(v.perRank)) is available to each rank "
            + "(\(v.available.source) \(b(v.available.bytes))\(share))"
    }

    /// The refusal: the problem and every flag (or, failing that, combination) that would make it fit.
    static func refusal(_ v: Verdict, _ p: TrainingParameters, config: LlamaConfig, worldSize: Int) -> String {
        var text = problem(v, p) + ". "
        let options = remedies(p, config: config, worldSize: worldSize, ranksOnHost: v.ranksOnHost, budget: v.perRank, data: v.data)
        if options.isEmpty {
            text += "No combination of --gradient-checkpointing true, --precision fp16, smaller --batch-pairs or --max-length fits; "
                + "use a host with more memory or more ranks on other hosts"
        } else {
            text += "Any of these would fit: " + options.joined(separator: "; ")
        }
        return text + ". Or add --force to start anyway."
    }

    /// Flag changes (each alone, else together) under which the estimate fits `budget`, with their estimates.
    static func remedies(_ p: TrainingParameters, config: LlamaConfig, worldSize: Int, ranksOnHost: Int, budget: Int,
                         data: DataRows? = nil) -> [String] {
        func total(_ q: TrainingParameters) -> Int {
            geometry(q, config: config, ranksOnHost: ranksOnHost, worldSize: worldSize, data: data).estimate().totalBytes
        }
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
        found += batchRemedies(p, prefix: "", total: total, budget: budget, data: data)
        found += otherHelpersRemedies(p, config: config, worldSize: worldSize, budget: budget, total: total)
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
            found += batchRemedies(q, prefix: prefix + " ", total: total, budget: budget, data: data)
        }
        return found
    }

    /// The largest `--batch-pairs` and the largest `--max-length` (each alone) that fit.
    /// With `data`, only values below what its batches hold (larger ones change nothing).
    static func batchRemedies(_ p: TrainingParameters, prefix: String, total: (TrainingParameters) -> Int, budget: Int,
                              data: DataRows? = nil) -> [String] {
        let running = data?.batch(p) ?? (pairs: p.batchPairs, longestRow: p.maxLength)
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
        if let (pairs, bytes) = largest(below: running.pairs, lowest: 1, { $0.batchPairs = $1 }) {
            found.append("\(prefix)--batch-pairs \(pairs) (~\(ProgressStartupSummary.bytes(bytes)); raise --grad-accum to keep the global batch)")
        }
        if let (length, bytes) = largest(below: running.longestRow, lowest: 2, { $0.maxLength = $1 }) {
            found.append("\(prefix)--max-length \(length) (~\(ProgressStartupSummary.bytes(bytes)); longer pairs are truncated)")
        }
        return found
    }

    /// `--zero 1` and `--lora-r`, offered when this build has them (other parts of the trainer add them):
    /// ZeRO-1 keeps 1/world of the master weights, optimizer state and decay mask, LoRA none of
    /// them (nor full gradients). Both from the `--zero 0` estimate of `p` (`total` of the run's geometry).
    static func otherHelpersRemedies(_ p: TrainingParameters, config: LlamaConfig, worldSize: Int, budget: Int,
                                     total: (TrainingParameters) -> Int) -> [String] {
        let names = Set(TrainingParameters.options.map(\.name))
        var unsharded = p
        unsharded.zero = 0
        let e = geometry(unsharded, config: config).estimate()
        let parameters = ParameterLayout(config: config).totalCount
        // Master weights + (gradients, moments, mask) - gradients.
        let masterAndState = parameters * 4 + (e.optimizerBytes - parameters * 4)
        let plain = total(unsharded)
        var found: [String] = []
        var zeroOneFits = false
        if names.contains("zero"), worldSize > 1, p.zero == 0 {
            let bytes = plain - masterAndState + masterAndState / worldSize
            zeroOneFits = bytes <= budget
            if zeroOneFits { found.append("--zero 1 (~\(ProgressStartupSummary.bytes(bytes)))") }
        }
        // --zero 2 (the gradients sharded too) where --zero 1 is not enough: it reduces every micro-batch.
        if names.contains("zero"), worldSize > 1, p.zero != 2, !zeroOneFits, p.loraConfig == nil {
            var q = p
            q.zero = 2
            let bytes = total(q)
            if bytes <= budget { found.append("--zero 2 (~\(ProgressStartupSummary.bytes(bytes)))") }
        }
        if names.contains("lora-r") {
            // Adapters only: no fp32 master copy, full gradients or optimizer state (the adapters themselves are small).
            let bytes = plain - masterAndState - parameters * 4
            if bytes <= budget { found.append("--lora-r 16 (~\(ProgressStartupSummary.bytes(bytes)), adapters only)") }
        }
        return found
    }
}
