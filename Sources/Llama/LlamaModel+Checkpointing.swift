import Kernels

// Gradient checkpointing (`--gradient-checkpointing true`): a saving forward keeps only the
// residual stream entering each layer ([L + 1, N, H] float32, see `SavedActivations`), and
// backward rebuilds one layer's q|k|v, attention output, middle stream and gate|up
// ([N, Q + 2K + Q + H + 2F]) from that input just before it needs them.
//
// Exact: the recompute runs the same kernels on the same float32 input with the same weights,
// so it writes the very values the first forward computed (the kernels are deterministic for a
// shape), and backward reads them as it would without checkpointing - bit-identical gradients
// in fp32 and fp16 (under fp16 the recomputed values pass through the same binary16 rounding).
// Cost: one more forward of every layer but its down projection; memory: the saved-activation
// arena shrinks from L layers of every kind to L + 1 layer inputs plus one layer of the rest.

extension LlamaModel {
    /// Refills the saved activations of `layer` from its kept input (the layer's forward up to gate|up).
    func recomputeLayer(_ layer: Int, _ batch: StackInput, arena: ActivationArena) {
        let saved = arena.saved
        precondition(saved.checkpointing, "recomputeLayer without gradient checkpointing")
        saved.recomputing = true
        defer { saved.recomputing = false }
        layerForward(layer, batch, arena: arena, untilSaved: true)
    }
}
