import Kernels

// LoRA in the one model code path: `adapters` nil is full fine-tuning; attached, every
// targeted projection adds `scale * (x A^T) B^T` to its output while enabled, backward fills
// only the adapter gradients (the base weights are frozen: no gradient is written for them)
// and passes the input gradient through both paths.

extension LlamaModel {
    // MARK: - Attaching

    /// Attaches `adapters` (made for this config): from now on the trainable parameters are the
    /// adapter vector (`trainableCount`, `trainableGroupRanges`, `loadTrainable`, `backward`).
    public func attach(_ adapters: LoRAAdapters) {
        precondition(adapters.layout.groupRanges.count == config.numHiddenLayers, "LoRA adapters made for another config")
        self.adapters = adapters
    }

    /// Parameters `backward` fills and `loadTrainable` takes: the adapters, else every weight.
    public var trainableCount: Int { adapters?.layout.totalCount ?? layout.totalCount }

    /// Contiguous ranges whose gradients become final together (the reducer's buckets):
    /// one per layer's adapters, else `layout.groupRanges`.
    public var trainableGroupRanges: [Range<Int>] { adapters?.layout.groupRanges ?? layout.groupRanges }

    /// Loads the trainable parameters: adapter weights under LoRA, else the working weights.
    public func loadTrainable(_ flat: UnsafeBufferPointer<Float>) {
        if let adapters { adapters.load(flat) } else { loadWeights(flat) }
    }

    // MARK: - Base-model forward (the reference)

    /// Per-token log-probs of the base model (adapters off), in a separate arena, so the
    /// policy's saved activations for the pending `backward` stay intact.
    public func forwardWithoutAdapters(_ batch: TokenRows) -> [Float] {
        withAdaptersDisabled { forward(batch, saveForBackward: false) }
    }

    /// The same for a shared-prompt batch.
    public func forwardWithoutAdapters(_ shared: SharedPromptRows) -> [Float] {
        withAdaptersDisabled { forward(shared, saveForBackward: false) }
    }

    /// Runs `body` with the adapters switched off and the reference arena in place.
    public func withAdaptersDisabled<T>(_ body: () throws -> T) rethrows -> T {
        guard let adapters else { return try body() }
        let policyArena = arena, policyInput = lastInput
        arena = adapters.referenceArena
        adapters.enabled = false
        defer {
            adapters.referenceArena = arena
            arena = policyArena
            lastInput = policyInput
            adapters.enabled = true
        }
        return try body()
    }

    // MARK: - The low-rank path

    /// `y[tokens, ldy] (columns 0..<out) += scale (x A^T) B^T` for `module` of `layer`, when
    /// adapters are attached, enabled and target it.
    @inline(__always)
    func addAdapter(_ layer: Int, _ module: LoRAModule, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
                    ldy: Int, tokens: Int) {
        addAdapters(layer, [module], x: x, tokens: tokens) { _ in (y, ldy) }
    }

    /// The same for projections sharing the input `x` (a `LoRALayout.stacks` entry): their A
    /// matrices are adjacent, so one product gives every branch's `x A^T`. `output(module)` is
    /// that module's output block and row stride.
    func addAdapters(_ layer: Int, _ modules: [LoRAModule], x: UnsafePointer<Float>, tokens: Int,
                     output: (LoRAModule) -> (UnsafeMutablePointer<Float>, Int)) {
        guard let adapters, adapters.enabled else { return }
        let targeted = modules.filter { adapters.layout.pair(layer: layer, module: $0) != nil }
        guard let first = targeted.first else { return }
        let w = adapters.weights.pointer
        let branches = targeted.map { module in
            let (y, ldy) = output(module)
            return LoRALinear.Branch(b: w + adapters.layout.pair(layer: layer, module: module)!.b,
                                     outFeatures: module.features(config).out, y: y, ldy: ldy)
        }
        LoRALinear.forwardStacked(x: x, aStack: w + adapters.layout.pair(layer: layer, module: first)!.a, branches: branches,
                                  u: adapters.scratch(tokens: tokens).u, tokens: tokens, inFeatures: first.features(config).in,
                                  rank: adapters.config.rank, scale: adapters.config.scale)
    }

    /// Which part of an adapter's backward to run: `.input` (`dx +=`, needs no `x`) and
    /// `.weights` (dA, dB; reads the `du` scratch `.input` left) may run apart, with `x`
    /// produced in between (o_proj's input, the attention output, which backward recomputes).
    enum AdapterBackwardPart { case all, input, weights }

    /// Backward of `addAdapter`: dA, dB into `gradients` (adapter layout), `dx +=` the input gradient.
    @inline(__always)
    func adapterBackward(_ layer: Int, _ module: LoRAModule, x: UnsafePointer<Float>, dy: UnsafePointer<Float>, ldy: Int,
                         dx: UnsafeMutablePointer<Float>, gradients: UnsafeMutablePointer<Float>, tokens: Int,
                         part: AdapterBackwardPart = .all) {
        adaptersBackward(layer, [module], x: x, dx: dx, gradients: gradients, tokens: tokens, part: part) { _ in (dy, ldy) }
    }

    /// Backward of `addAdapters`: `dOutput(module)` is that module's output gradient and row stride.
    func adaptersBackward(_ layer: Int, _ modules: [LoRAModule], x: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>,
                          gradients: UnsafeMutablePointer<Float>, tokens: Int, part: AdapterBackwardPart = .all,
                          dOutput: (LoRAModule) -> (UnsafePointer<Float>, Int)) {
        guard let adapters else { return }
        let targeted = modules.filter { adapters.layout.pair(layer: layer, module: $0) != nil }
        guard let first = targeted.first else { return }
        let w = adapters.weights.pointer
        let branches = targeted.map { module in
            let (dy, ldy) = dOutput(module), pair = adapters.layout.pair(layer: layer, module: module)!
            return LoRALinear.Branch(b: w + pair.b, outFeatures: module.features(config).out, y: UnsafeMutablePointer(mutating: dy),
                                     ldy: ldy, dB: gradients + pair.b)
        }
        let a = adapters.layout.pair(layer: layer, module: first)!.a, scratch = adapters.scratch(tokens: tokens)
        let inFeatures = first.features(config).in, rank = adapters.config.rank, scale = adapters.config.scale
        if part != .weights {
            LoRALinear.backwardStackedInput(aStack: w + a, branches: branches, dx: dx, du: scratch.du, tokens: tokens,
                                            inFeatures: inFeatures, rank: rank, scale: scale)
        }
        if part != .input {
            LoRALinear.backwardStackedWeights(x: x, aStack: w + a, branches: branches, dAStack: gradients + a, u: scratch.u,
                                              du: scratch.du, tokens: tokens, inFeatures: inFeatures, rank: rank, scale: scale)
        }
    }

    /// Where backward writes the gradient of the base parameter at `offset`: the flat gradient
    /// buffer in full fine-tuning, nowhere (nil) under LoRA.
    @inline(__always)
    func baseGradient(_ gradients: UnsafeMutablePointer<Float>, _ offset: Int) -> UnsafeMutablePointer<Float>? {
        adapters == nil ? gradients + offset : nil
    }

    /// As `baseGradient`, for kernels that always write a weight gradient (norms): a sink under LoRA.
    @inline(__always)
    func baseGradientOrSink(_ gradients: UnsafeMutablePointer<Float>, _ offset: Int) -> UnsafeMutablePointer<Float> {
        guard let adapters else { return gradients + offset }
        return adapters.frozenGradientSink.pointer
    }

    // MARK: - Merging

    /// The base weights with every adapter folded in, `W + scale * B A` (float32, layout order):
    /// what PEFT's `merge_and_unload` computes.
    public func mergedWeights() -> [Float] {
        var flat = [Float](repeating: 0, count: layout.totalCount)
        flat.withUnsafeMutableBufferPointer { copyWeights(into: $0) }
        guard let adapters else { return flat }
        let w = adapters.weights.pointer, r = adapters.config.rank
        flat.withUnsafeMutableBufferPointer { out in
            for entry in adapters.layout.entries where !entry.isB {
                let f = entry.module.features(config)
                let pair = adapters.layout.pair(layer: entry.layer, module: entry.module)!
                let base = layout.entry(entry.baseName).offset
                // W[out, in] += scale * B[out, r] A[r, in]
                Matmul.gemm(transposeA: false, transposeB: false, m: f.out, n: f.in, k: r, alpha: adapters.config.scale,
                            a: w + pair.b, lda: r, b: w + pair.a, ldb: f.in, beta: 1, c: out.baseAddress! + base, ldc: f.in)
            }
        }
        return flat
    }
}
