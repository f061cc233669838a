// Vectorised exp and the loops built on it (softmax rows, log-sum-exp, SwiGLU).
//
// Swift calls glibc's scalar expf per element, which keeps these loops from vectorising;
// here they are compiled for AVX-512 behind `target` attributes and chosen at run time,
// with a portable loop (plain expf) as the fallback. The AVX-512 exp is the Cephes
// polynomial on a range-reduced argument with scalef for 2^n: relative error ~2 ulp,
// underflows to 0 smoothly, overflows to +inf above ~88.7.
#include "CKernelSupport.h"
#include <math.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

static int vector_level = -1;  // 0 portable, 1 avx512f

static int level(void) {
    if (vector_level < 0) {
        int l = 0;
#if defined(__x86_64__)
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx512f")) l = 1;
#endif
        vector_level = l;
    }
    return vector_level;
}

int dpo_cpu_has_avx512_exp(void) { return level() == 1; }

// MARK: - AVX-512

#if defined(__x86_64__)
__attribute__((target("avx512f")))
static inline __m512 exp512(__m512 x) {
    const __m512 log2e = _mm512_set1_ps(1.44269504088896341f);
    const __m512 ln2hi = _mm512_set1_ps(0.693359375f);
    const __m512 ln2lo = _mm512_set1_ps(-2.12194440e-4f);
    x = _mm512_min_ps(x, _mm512_set1_ps(89.0f));
    x = _mm512_max_ps(x, _mm512_set1_ps(-104.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, log2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, ln2hi, x);
    r = _mm512_fnmadd_ps(n, ln2lo, r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    __m512 r2 = _mm512_mul_ps(r, r);
    p = _mm512_fmadd_ps(p, r2, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

__attribute__((target("avx512f")))
static void vexp_avx512(const float *x, float *y, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, exp512(_mm512_loadu_ps(x + i)));
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(y + i, m, exp512(_mm512_maskz_loadu_ps(m, x + i)));
    }
}

__attribute__((target("avx512f")))
static float row_max_avx512(const float *x, size_t n) {
    __m512 m = _mm512_set1_ps(-INFINITY);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) m = _mm512_max_ps(m, _mm512_loadu_ps(x + i));
    float best = _mm512_reduce_max_ps(m);
    for (; i < n; i++) best = x[i] > best ? x[i] : best;
    return best;
}

/// y = scale * exp(x - shift); returns the sum of exp(x - shift).
__attribute__((target("avx512f")))
static float shifted_exp_avx512(const float *x, float *y, size_t n, float shift, float scale) {
    const __m512 s = _mm512_set1_ps(shift), k = _mm512_set1_ps(scale);
    __m512 sum = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 e = exp512(_mm512_sub_ps(_mm512_loadu_ps(x + i), s));
        sum = _mm512_add_ps(sum, e);
        if (y) _mm512_storeu_ps(y + i, _mm512_mul_ps(e, k));
    }
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        __m512 e = exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), s));
        e = _mm512_maskz_mov_ps(m, e);
        sum = _mm512_add_ps(sum, e);
        if (y) _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(e, k));
    }
    return _mm512_reduce_add_ps(sum);
}

__attribute__((target("avx512f")))
static void swiglu_forward_avx512(const float *gate, const float *up, float *out, size_t n) {
    const __m512 one = _mm512_set1_ps(1.0f);
    size_t i = 0;
    // The tail goes through the same vector code under a mask, so a value does not depend
    // on where a call's range starts or ends.
    for (; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        __m512 g = _mm512_maskz_loadu_ps(m, gate + i);
        __m512 s = _mm512_div_ps(one, _mm512_add_ps(one, exp512(_mm512_sub_ps(_mm512_setzero_ps(), g))));
        _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(_mm512_mul_ps(g, s), _mm512_maskz_loadu_ps(m, up + i)));
    }
}

__attribute__((target("avx512f")))
static void swiglu_backward_avx512(const float *gate, const float *up, const float *dout, float *dgate, float *dup, size_t n) {
    const __m512 one = _mm512_set1_ps(1.0f);
    size_t i = 0;
    for (; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        // Every input is loaded before any store: dgate/dup may alias gate/up (in-place backward).
        __m512 g = _mm512_maskz_loadu_ps(m, gate + i), d = _mm512_maskz_loadu_ps(m, dout + i);
        __m512 u = _mm512_maskz_loadu_ps(m, up + i);
        __m512 s = _mm512_div_ps(one, _mm512_add_ps(one, exp512(_mm512_sub_ps(_mm512_setzero_ps(), g))));
        // dgate = d * up * s * (1 + g * (1 - s))
        __m512 t = _mm512_fmadd_ps(g, _mm512_sub_ps(one, s), one);
        _mm512_mask_storeu_ps(dup + i, m, _mm512_mul_ps(d, _mm512_mul_ps(g, s)));
        _mm512_mask_storeu_ps(dgate + i, m, _mm512_mul_ps(_mm512_mul_ps(d, u), _mm512_mul_ps(s, t)));
    }
}
#endif

// MARK: - Portable

static float row_max_portable(const float *x, size_t n) {
    float best = -INFINITY;
    for (size_t i = 0; i < n; i++) best = x[i] > best ? x[i] : best;
    return best;
}

static float shifted_exp_portable(const float *x, float *y, size_t n, float shift, float scale) {
    float sum = 0;
    for (size_t i = 0; i < n; i++) {
        float e = expf(x[i] - shift);
        sum += e;
        if (y) y[i] = scale * e;
    }
    return sum;
}

// MARK: - Entry points

void dpo_vexp(const float *x, float *y, size_t n) {
#if defined(__x86_64__)
    if (level() == 1) { vexp_avx512(x, y, n); return; }
#endif
    for (size_t i = 0; i < n; i++) y[i] = expf(x[i]);
}

float dpo_row_max(const float *x, size_t n) {
#if defined(__x86_64__)
    if (level() == 1) return row_max_avx512(x, n);
#endif
    return row_max_portable(x, n);
}

float dpo_shifted_exp(const float *x, float *y, size_t n, float shift, float scale) {
#if defined(__x86_64__)
    if (level() == 1) return shifted_exp_avx512(x, y, n, shift, scale);
#endif
    return shifted_exp_portable(x, y, n, shift, scale);
}

void dpo_softmax_row(float *row, size_t n) {
    if (n == 0) return;
    float m = dpo_row_max(row, n);
    float sum = dpo_shifted_exp(row, row, n, m, 1.0f);
    float inv = 1.0f / sum;
    for (size_t i = 0; i < n; i++) row[i] *= inv;
}

float dpo_logsumexp(const float *row, size_t n) {
    float m = dpo_row_max(row, n);
    return m + logf(dpo_shifted_exp(row, NULL, n, m, 1.0f));
}

void dpo_swiglu_forward(const float *gate, const float *up, float *out, size_t n) {
#if defined(__x86_64__)
    if (level() == 1) { swiglu_forward_avx512(gate, up, out, n); return; }
#endif
    for (size_t i = 0; i < n; i++) out[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

void dpo_swiglu_backward(const float *gate, const float *up, const float *dout, float *dgate, float *dup, size_t n) {
#if defined(__x86_64__)
    if (level() == 1) { swiglu_backward_avx512(gate, up, dout, dgate, dup, n); return; }
#endif
    for (size_t i = 0; i < n; i++) {
        float g = gate[i], u = up[i], d = dout[i], s = 1.0f / (1.0f + expf(-g));
        dup[i] = d * g * s;
        dgate[i] = d * u * s * (1.0f + g * (1.0f - s));
    }
}
