#ifndef DPO_ADAMW_H
#define DPO_ADAMW_H
// The fused optimizer pass (AdamW.c); see AdamWSweep.swift in Kernels for the Swift side.
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Per-step constants of the fused AdamW sweep, all float32 as the update computes them.
typedef struct {
    /// Gradient factors applied in this order: 1 / loss scale, then the clipping factor (1 = none).
    float unscale;
    float clip;
    float one_minus_beta1;
    float beta2;
    float one_minus_beta2;
    /// lr * weight decay (applied only where `decays`).
    float decay;
    /// lr / (1 - beta1^t) and sqrt(1 - beta2^t).
    float step_size;
    float correction_root;
    float epsilon;
} dpo_adamw_hyper;

/// For each of `count` elements, in one pass:
///   g = (gradients[i] * unscale) * clip        (stored into gradients_out[i] when not NULL)
///   w = weights[i]; if decays: w = w - w * decay
///   m = first[i] + (g - first[i]) * (1 - b1);   v = second[i] * b2 + ((1 - b2) * g) * g
///   w = w - step_size * (m / (sqrt(v) / correction_root + eps))
///   weights[i] = w; working32[i] = w or working16[i] = binary16(w) (round to nearest even),
/// whichever is not NULL. `gradients_out` may equal `gradients`.
void dpo_adamw_sweep(const dpo_adamw_hyper *hyper, int decays, float *weights, const float *gradients,
                     float *gradients_out, float *first, float *second, float *working32, uint16_t *working16,
                     size_t count);

/// Sum over i of ((double)(x[i] * scale))^2, in 16 double lanes (lane i mod 16) summed in
/// lane order: the same bits on every path. Infinite or NaN when any x[i] * scale is.
double dpo_sum_squares(const float *x, size_t count, float scale);

/// Test hook: 1 forces the portable loops, 0 restores the CPU's best; returns the level in use
/// (0 portable, 1 AVX-512).
int dpo_adamw_force_portable(int portable);

#ifdef __cplusplus
}
#endif
#endif
