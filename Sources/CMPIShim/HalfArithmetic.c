// Float16 arithmetic around fp16 gradient reductions: the user sum op, scaled
// float->half conversion, half->float with an inf/NaN check, and a scaled float check.
//
// Open MPI 4.1 has no half type, so halves travel as 2-byte elements and are added here.
// Loops are compiled for F16C+AVX and AVX-512 behind `target` attributes and chosen at run
// time; the portable `_Float16` loops are the fallback (and what other CPUs run).
#include "CMPIShim.h"
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

// MARK: - Portable

static inline float half_to_float(uint16_t bits) {
    _Float16 h;
    memcpy(&h, &bits, 2);
    return (float)h;
}

static inline uint16_t float_to_half(float f) {
    _Float16 h = (_Float16)f;  // round to nearest even
    uint16_t bits;
    memcpy(&bits, &h, 2);
    return bits;
}

static void sum_portable(const uint16_t *in, uint16_t *inout, size_t n) {
    for (size_t i = 0; i < n; i++) inout[i] = float_to_half(half_to_float(in[i]) + half_to_float(inout[i]));
}

static void to_half_portable(const float *src, uint16_t *dst, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) dst[i] = float_to_half(src[i] * scale);
}

static int to_float_portable(const uint16_t *src, float *dst, size_t n) {
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        dst[i] = half_to_float(src[i]);
        bad |= (src[i] & 0x7c00) == 0x7c00;
    }
    return bad;
}

// MARK: - F16C + AVX

#if defined(__x86_64__)
__attribute__((target("f16c,avx")))
static void sum_f16c(const uint16_t *in, uint16_t *inout, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 a = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(in + i)));
        __m256 b = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(inout + i)));
        _mm_storeu_si128((__m128i *)(inout + i), _mm256_cvtps_ph(_mm256_add_ps(a, b), _MM_FROUND_TO_NEAREST_INT));
    }
    for (; i < n; i++) inout[i] = _cvtss_sh(_cvtsh_ss(in[i]) + _cvtsh_ss(inout[i]), _MM_FROUND_TO_NEAREST_INT);
}

__attribute__((target("f16c,avx")))
static void to_half_f16c(const float *src, uint16_t *dst, size_t n, float scale) {
    __m256 s = _mm256_set1_ps(scale);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 f = _mm256_mul_ps(_mm256_loadu_ps(src + i), s);
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(f, _MM_FROUND_TO_NEAREST_INT));
    }
    for (; i < n; i++) dst[i] = _cvtss_sh(src[i] * scale, _MM_FROUND_TO_NEAREST_INT);
}

__attribute__((target("f16c,avx")))
static int to_float_f16c(const uint16_t *src, float *dst, size_t n) {
    // A half is inf/NaN when its exponent bits are all ones: compare in the same pass.
    const __m128i exponent = _mm_set1_epi16(0x7c00);
    __m128i bad = _mm_setzero_si128();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm_loadu_si128((const __m128i *)(src + i));
        bad = _mm_or_si128(bad, _mm_cmpeq_epi16(_mm_and_si128(h, exponent), exponent));
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
    }
    int any = _mm_movemask_epi8(bad) != 0;
    for (; i < n; i++) {
        dst[i] = _cvtsh_ss(src[i]);
        any |= (src[i] & 0x7c00) == 0x7c00;
    }
    return any;
}

__attribute__((target("avx512f")))
static void sum_avx512(const uint16_t *in, uint16_t *inout, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 a = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(in + i)));
        __m512 b = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(inout + i)));
        _mm256_storeu_si256((__m256i *)(inout + i), _mm512_cvtps_ph(_mm512_add_ps(a, b), _MM_FROUND_TO_NEAREST_INT));
    }
    if (i < n) sum_f16c(in + i, inout + i, n - i);
}

__attribute__((target("avx512f")))
static void to_half_avx512(const float *src, uint16_t *dst, size_t n, float scale) {
    __m512 s = _mm512_set1_ps(scale);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 f = _mm512_mul_ps(_mm512_loadu_ps(src + i), s);
        _mm256_storeu_si256((__m256i *)(dst + i), _mm512_cvtps_ph(f, _MM_FROUND_TO_NEAREST_INT));
    }
    if (i < n) to_half_f16c(src + i, dst + i, n - i, scale);
}
#endif

static int level = -1;  // 0 portable, 1 F16C, 2 AVX-512F

static int half_level(void) {
    if (level < 0) {
        int l = 0;
#if defined(__x86_64__)
        __builtin_cpu_init();
        if (__builtin_cpu_supports("f16c") && __builtin_cpu_supports("avx")) l = 1;
        if (l == 1 && __builtin_cpu_supports("avx512f")) l = 2;
#endif
        level = l;
    }
    return level;
}

int dpo_mpi_half_uses_f16c(void) { return half_level() > 0; }

void dpo_mpi_half_force_portable(int portable) {
    level = -1;
    if (portable) level = 0;
}

// MARK: - Entry points

void dpo_f16_sum_into(const uint16_t *in, uint16_t *inout, size_t count) {
#if defined(__x86_64__)
    switch (half_level()) {
    case 2: sum_avx512(in, inout, count); return;
    case 1: sum_f16c(in, inout, count); return;
    default: break;
    }
#endif
    sum_portable(in, inout, count);
}

void dpo_f32_to_f16_scaled(const float *src, uint16_t *dst, size_t count, float scale) {
#if defined(__x86_64__)
    switch (half_level()) {
    case 2: to_half_avx512(src, dst, count, scale); return;
    case 1: to_half_f16c(src, dst, count, scale); return;
    default: break;
    }
#endif
    to_half_portable(src, dst, count, scale);
}

int dpo_f16_to_f32_checked(const uint16_t *src, float *dst, size_t count) {
#if defined(__x86_64__)
    if (half_level() > 0) return to_float_f16c(src, dst, count);
#endif
    return to_float_portable(src, dst, count);
}

int dpo_f32_scale_checked(float *buffer, size_t count, float scale) {
    // OR of (bits & exponent mask) == mask over all elements, vectorised by the compiler.
    uint32_t bad = 0;
    for (size_t i = 0; i < count; i++) {
        float v = buffer[i] * scale;
        buffer[i] = v;
        uint32_t bits;
        memcpy(&bits, &v, 4);
        bad |= (uint32_t)((bits & 0x7f800000u) == 0x7f800000u);
    }
    return bad != 0;
}

// Accumulation (ZeRO-2, a step of several micro-batches): plain loops, the compiler
// vectorises the float add; the check is the OR of "exponent all ones" as above.

int dpo_f16_add_to_f32_checked(const uint16_t *src, float *dst, size_t count) {
    uint32_t bad = 0;
    for (size_t i = 0; i < count; i++) {
        float v = dst[i] + half_to_float(src[i]);
        dst[i] = v;
        uint32_t bits;
        memcpy(&bits, &v, 4);
        bad |= (uint32_t)((bits & 0x7f800000u) == 0x7f800000u) | (uint32_t)((src[i] & 0x7c00) == 0x7c00);
    }
    return bad != 0;
}

int dpo_f32_add_checked(const float *src, float *dst, size_t count) {
    uint32_t bad = 0;
    for (size_t i = 0; i < count; i++) {
        float v = dst[i] + src[i];
        dst[i] = v;
        uint32_t bits;
        memcpy(&bits, &v, 4);
        bad |= (uint32_t)((bits & 0x7f800000u) == 0x7f800000u);
    }
    return bad != 0;
}
