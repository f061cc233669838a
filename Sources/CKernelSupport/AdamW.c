// The optimizer pass as one sweep over memory: per element, the gradient is unscaled and
// clipped, AdamW updates the fp32 master weight and both moments, and the new weight is
// written into the working copy (fp32, or rounded to binary16). The old pass made five
// trips over the gradients and the weights; this one reads each array once and writes it once.
//
// Every path performs the same float operations in the same order per element as the plain
// Swift loops did (and as the tests' oracle does), so results are bit-identical across
// paths: no FMA contraction (the pragma below), IEEE sqrt and division in both.
// The sum of squares for the global norm uses a fixed lane layout (16 double lanes, lane =
// index mod 16, summed in lane order), so the AVX-512 and portable paths agree bit for bit.
#include "CKernelSupport.h"
#include <math.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#pragma STDC FP_CONTRACT OFF
#pragma clang fp contract(off)

static int sweep_level = -1;  // 0 portable, 1 avx512f

static int level(void) {
    if (sweep_level < 0) {
        int l = 0;
#if defined(__x86_64__)
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx512f")) l = 1;
#endif
        sweep_level = l;
    }
    return sweep_level;
}

int dpo_adamw_force_portable(int portable) {
    sweep_level = portable ? 0 : -1;
    return level();
}

// MARK: - one element (portable path and vector tails)

static inline float adamw_element(const dpo_adamw_hyper *h, int decays, size_t i, float *w, const float *g,
                                  float *gout, float *m, float *v) {
    float gi = (g[i] * h->unscale) * h->clip;
    if (gout) gout[i] = gi;
    float wi = w[i];
    if (decays) wi = wi - wi * h->decay;
    float mi = m[i] + (gi - m[i]) * h->one_minus_beta1;  // torch's lerp_
    float vi = v[i] * h->beta2 + (h->one_minus_beta2 * gi) * gi;
    m[i] = mi;
    v[i] = vi;
    float denominator = sqrtf(vi) / h->correction_root + h->epsilon;
    wi = wi - h->step_size * (mi / denominator);
    w[i] = wi;
    return wi;
}

static void sweep_portable(const dpo_adamw_hyper *h, int decays, float *w, const float *g, float *gout, float *m,
                           float *v, float *out32, uint16_t *out16, size_t n) {
    // Blocks, so the binary16 rounding of the new weights is one vector call per block.
    const size_t block = 1024;
    for (size_t start = 0; start < n; start += block) {
        size_t end = start + block < n ? start + block : n;
        for (size_t i = start; i < end; i++) {
            float wi = adamw_element(h, decays, i, w, g, gout, m, v);
            if (out32) out32[i] = wi;
        }
        if (out16) dpo_f32_to_f16(w + start, out16 + start, end - start);
    }
}

static double sum_squares_portable(const float *x, size_t n, float scale) {
    double lanes[16] = {0};
    for (size_t i = 0; i < n; i++) {
        double d = (double)(x[i] * scale);
        lanes[i % 16] += d * d;
    }
    double total = 0;
    for (int l = 0; l < 16; l++) total += lanes[l];
    return total;
}

// MARK: - AVX-512

#if defined(__x86_64__)
__attribute__((target("avx512f")))
static void sweep_avx512(const dpo_adamw_hyper *h, int decays, float *w, const float *g, float *gout, float *m,
                         float *v, float *out32, uint16_t *out16, size_t n) {
    const __m512 unscale = _mm512_set1_ps(h->unscale), clip = _mm512_set1_ps(h->clip);
    const __m512 omb1 = _mm512_set1_ps(h->one_minus_beta1), b2 = _mm512_set1_ps(h->beta2);
    const __m512 omb2 = _mm512_set1_ps(h->one_minus_beta2), decay = _mm512_set1_ps(h->decay);
    const __m512 step = _mm512_set1_ps(h->step_size), root = _mm512_set1_ps(h->correction_root);
    const __m512 eps = _mm512_set1_ps(h->epsilon);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 gi = _mm512_mul_ps(_mm512_mul_ps(_mm512_loadu_ps(g + i), unscale), clip);
        if (gout) _mm512_storeu_ps(gout + i, gi);
        __m512 wi = _mm512_loadu_ps(w + i);
        if (decays) wi = _mm512_sub_ps(wi, _mm512_mul_ps(wi, decay));
        __m512 mi = _mm512_loadu_ps(m + i);
        mi = _mm512_add_ps(mi, _mm512_mul_ps(_mm512_sub_ps(gi, mi), omb1));
        __m512 vi = _mm512_add_ps(_mm512_mul_ps(_mm512_loadu_ps(v + i), b2), _mm512_mul_ps(_mm512_mul_ps(omb2, gi), gi));
        _mm512_storeu_ps(m + i, mi);
        _mm512_storeu_ps(v + i, vi);
        __m512 denominator = _mm512_add_ps(_mm512_div_ps(_mm512_sqrt_ps(vi), root), eps);
        wi = _mm512_sub_ps(wi, _mm512_mul_ps(step, _mm512_div_ps(mi, denominator)));
        _mm512_storeu_ps(w + i, wi);
        if (out32) _mm512_storeu_ps(out32 + i, wi);
        if (out16) _mm256_storeu_si256((__m256i *)(out16 + i), _mm512_cvtps_ph(wi, _MM_FROUND_TO_NEAREST_INT));
    }
    for (; i < n; i++) {
        float wi = adamw_element(h, decays, i, w, g, gout, m, v);
        if (out32) out32[i] = wi;
    }
    size_t tail = n % 16;
    if (out16 && tail) dpo_f32_to_f16(w + n - tail, out16 + n - tail, tail);
}

__attribute__((target("avx512f")))
static double sum_squares_avx512(const float *x, size_t n, float scale) {
    const __m512 s = _mm512_set1_ps(scale);
    __m512d low = _mm512_setzero_pd(), high = _mm512_setzero_pd();  // lanes 0-7, 8-15
    size_t i = 0;
    for (; i < n; i += 16) {
        __mmask16 mask = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        __m512 f = _mm512_mul_ps(_mm512_maskz_loadu_ps(mask, x + i), s);
        __m512d a = _mm512_cvtps_pd(_mm512_castps512_ps256(f));
        __m512d b = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(f), 1)));
        low = _mm512_add_pd(low, _mm512_mul_pd(a, a));
        high = _mm512_add_pd(high, _mm512_mul_pd(b, b));
    }
    double lanes[16];
    _mm512_storeu_pd(lanes, low);
    _mm512_storeu_pd(lanes + 8, high);
    double total = 0;
    for (int l = 0; l < 16; l++) total += lanes[l];
    return total;
}
#endif

// MARK: - entry points

void dpo_adamw_sweep(const dpo_adamw_hyper *hyper, int decays, float *weights, const float *gradients,
                     float *gradients_out, float *first, float *second, float *working32, uint16_t *working16,
                     size_t count) {
#if defined(__x86_64__)
    if (level() == 1) {
        sweep_avx512(hyper, decays, weights, gradients, gradients_out, first, second, working32, working16, count);
        return;
    }
#endif
    sweep_portable(hyper, decays, weights, gradients, gradients_out, first, second, working32, working16, count);
}

double dpo_sum_squares(const float *x, size_t count, float scale) {
#if defined(__x86_64__)
    if (level() == 1) return sum_squares_avx512(x, count, scale);
#endif
    return sum_squares_portable(x, count, scale);
}
