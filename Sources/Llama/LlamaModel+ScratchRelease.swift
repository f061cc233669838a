extension LlamaModel {
    /// Gives back to the kernel the pages of what a forward without backward uses as scratch:
    /// the arena (when it holds no saved activations) and the fp16 conversion scratch of the
    /// layers and LM-head panels. The next forward refaults them zeroed and overwrites them.
    ///
    /// Why: `DPOStep` runs the frozen reference between the policy's forward and its backward,
    /// so the reference's scratch (smollm2-135m, fp16, 2048 tokens: about 30 MiB) would
    /// otherwise stay resident through the policy's backward, the peak of the step. Refaulting
    /// it costs a few huge-page faults per step. A no-op for an arena that saves activations.
    /// Returns the bytes released.
    @discardableResult
    public func releaseForwardScratch() -> Int {
        guard let arena, !arena.capacity.saving else { return 0 }
        let scratch: [FloatBuffer?] = [layerScratch, headPanelScratch]
        return arena.releasePagesBetweenForwards() + scratch.reduce(0) { $0 + ($1?.releasePages() ?? 0) }
    }
}
