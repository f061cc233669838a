// MARK: - Sharding and batching across ranks

/// Which examples each rank trains on, step by step, as PyTorch's `DistributedSampler` does:
/// each epoch a permutation seeded by `seed + epoch` (the same on every rank), padded by repeating from
/// its start to a multiple of the world size; rank r takes positions r, r+W, r+2W...; so every rank
/// gets the same number of examples and of steps, and no rank waits at a collective forever.
public struct BatchPlan: Sendable {
    public let exampleCount: Int
    /// Pairs (or SFT rows) per rank per step.
    public let batchSize: Int
    public let worldSize: Int
    public let rank: Int
    public let seed: Int
    public let shuffle: Bool
    /// Drop the last, smaller batch of each epoch (the same on every rank).
    public let dropLast: Bool
    /// Row lengths for `--group-by-length` (nil = off): within windows of `groupWindowBatches` batches,
    /// examples are sorted longest first before being cut into batches, so batches pad less.
    public let lengths: [Int]?
    public let groupWindowBatches: Int

    public init(exampleCount: Int, batchSize: Int, worldSize: Int = 1, rank: Int = 0, seed: Int = 0, shuffle: Bool = true,
                dropLast: Bool = false, groupByLength lengths: [Int]? = nil, groupWindowBatches: Int = 50) throws {
        guard exampleCount > 0 else { throw BatchPlanError.noExamples }
        guard batchSize > 0, worldSize > 0, rank >= 0, rank < worldSize, groupWindowBatches > 0 else {
            throw BatchPlanError.invalid("batch size \(batchSize), world size \(worldSize), rank \(rank)")
        }
        if let lengths, lengths.count != exampleCount {
            throw BatchPlanError.invalid("\(lengths.count) lengths for \(exampleCount) examples")
        }
        self.exampleCount = exampleCount
        self.batchSize = batchSize
        self.worldSize = worldSize
        self.rank = rank
        self.seed = seed
        self.shuffle = shuffle
        self.dropLast = dropLast
        self.lengths = lengths
        self.groupWindowBatches = groupWindowBatches
        if stepsPerEpoch == 0 {
            throw BatchPlanError.invalid("\(examplesPerRank) example(s) per rank is less than one batch of \(batchSize) with dropLast")
        }
    }

    /// ceil(exampleCount / worldSize): examples per rank per epoch.
    public var examplesPerRank: Int { (exampleCount + worldSize - 1) / worldSize }

    /// Optimizer-visible steps per epoch (equal on every rank).
    public var stepsPerEpoch: Int {
        dropLast ? examplesPerRank / batchSize : (examplesPerRank + batchSize - 1) / batchSize
    }

    /// This rank's example indices for `epoch`, in order.
    public func indices(epoch: Int) -> [Int] {
        var order: [Int]
        if shuffle {
            var random = SeededRandom(seed: UInt64(bitPattern: Int64(seed &+ epoch)))
            order = random.permutation(exampleCount)
        } else {
            order = Array(0..<exampleCount)
        }
        let total = examplesPerRank * worldSize
        var position = 0
        while order.count < total {
            order.append(order[position % exampleCount])
            position += 1
        }
        return stride(from: rank, to: total, by: worldSize).map { order[$0] }
    }

    /// This rank's batches of example indices for `epoch`, `stepsPerEpoch` of them.
    public func batches(epoch: Int) -> [[Int]] {
        var mine = indices(epoch: epoch)
        if let lengths {
            let window = batchSize * groupWindowBatches
            var grouped = [Int]()
            for start in stride(from: 0, to: mine.count, by: window) {
                let chunk = mine[start..<min(start + window, mine.count)]
                grouped += chunk.enumerated().sorted {
                    lengths[$0.element] != lengths[$1.element] ? lengths[$0.element] > lengths[$1.element] : $0.offset < $1.offset
                }.map(\.element)
            }
            mine = grouped
        }
        return (0..<stepsPerEpoch).map { step in
            Array(mine[(step * batchSize)..<min((step + 1) * batchSize, mine.count)])
        }
    }
}

/// Why a batch plan cannot be made.
public enum BatchPlanError: Error, CustomStringConvertible, Equatable {
    case noExamples
    case invalid(String)

    public var description: String {
        switch self {
        case .noExamples: return "no examples to train on (all dropped or skipped?)"
        case .invalid(let what): return "invalid batching: \(what)"
        }
    }
}
