// Float16 / bfloat16 <-> Float32 conversion, the hot path of fp16 storage.
//
// Swift compiles for generic x86-64, where each Float16 conversion is a libcall
// (~0.6 GB/s). Here the loops are compiled for F16C+AVX2 (or AVX-512) behind
// `target` attributes and chosen at run time; the portable loop is the fallback
// and the oracle in tests.
#include "CKernelSupport.h"
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

// MARK: - portable reference

static float half_to_float_scalar(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else {  // subnormal: normalise
            int e = -1;
            do { mant <<= 1; e++; } while ((mant & 0x400) == 0);
            mant &= 0x3ff;
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | (mant << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (mant << 13) | (mant ? 0x400000u : 0);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static uint16_t float_to_half_scalar(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t absx = x & 0x7fffffffu;
    if (absx >= 0x7f800000u) {  // inf or NaN
        return (uint16_t)(sign | 0x7c00 | (absx > 0x7f800000u ? 0x200 | ((absx >> 13) & 0x3ff) : 0));
    }
    if (absx >= 0x477ff000u) return (uint16_t)(sign | 0x7c00);  // rounds to >= 65520: inf
    if (absx < 0x38800000u) {  // result is subnormal or zero
        if (absx < 0x33000000u) return (uint16_t)sign;  // < 2^-25: rounds to 0
        uint32_t e = absx >> 23;
        uint32_t m = (absx & 0x7fffff) | 0x800000;
        uint32_t shift = 126 - e;  // 14 + (113 - e)
        uint32_t half = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1);
        uint32_t mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t e = (absx >> 23) - 127 + 15;
    uint32_t m = absx & 0x7fffff;
    uint32_t half = (e << 10) | (m >> 13);
    uint32_t rem = m & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (half & 1))) half++;
    return (uint16_t)(sign | half);
}

static void f16_to_f32_portable(const uint16_t *src, float *dst, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = half_to_float_scalar(src[i]);
}
static void f32_to_f16_portable(const float *src, uint16_t *dst, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = float_to_half_scalar(src[i]);
}

// MARK: - F16C

#if defined(__x86_64__)
__attribute__((target("f16c,avx")))
static void f16_to_f32_f16c(const uint16_t *src, float *dst, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm_loadu_si128((const __m128i *)(src + i));
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
    }
    for (; i < n; i++) dst[i] = _cvtsh_ss(src[i]);
}

__attribute__((target("f16c,avx")))
static void f32_to_f16_f16c(const float *src, uint16_t *dst, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 f = _mm256_loadu_ps(src + i);
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(f, _MM_FROUND_TO_NEAREST_INT));
    }
    for (; i < n; i++) dst[i] = _cvtss_sh(src[i], _MM_FROUND_TO_NEAREST_INT);
}

__attribute__((target("avx512f")))
static void f16_to_f32_avx512(const uint16_t *src, float *dst, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256i h = _mm256_loadu_si256((const __m256i *)(src + i));
        _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(h));
    }
    if (i < n) f16_to_f32_f16c(src + i, dst + i, n - i);
}

__attribute__((target("avx512f")))
static void f32_to_f16_avx512(const float *src, uint16_t *dst, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 f = _mm512_loadu_ps(src + i);
        _mm256_storeu_si256((__m256i *)(dst + i), _mm512_cvtps_ph(f, _MM_FROUND_TO_NEAREST_INT));
    }
    if (i < n) f32_to_f16_f16c(src + i, dst + i, n - i);
}
#endif

static int cpu_level = -1;  // 0 portable, 1 f16c, 2 avx512f

static int half_level(void) {
    if (cpu_level < 0) {
        int level = 0;
#if defined(__x86_64__)
        __builtin_cpu_init();
        if (__builtin_cpu_supports("f16c") && __builtin_cpu_supports("avx")) level = 1;
        if (level == 1 && __builtin_cpu_supports("avx512f")) level = 2;
#endif
        cpu_level = level;
    }
    return cpu_level;
}

int dpo_cpu_has_f16c(void) { return half_level() > 0; }

void dpo_f16_to_f32(const uint16_t *src, float *dst, size_t count) {
#if defined(__x86_64__)
    switch (half_level()) {
    case 2: f16_to_f32_avx512(src, dst, count); return;
    case 1: f16_to_f32_f16c(src, dst, count); return;
    default: break;
    }
#endif
    f16_to_f32_portable(src, dst, count);
}

void dpo_f32_to_f16(const float *src, uint16_t *dst, size_t count) {
#if defined(__x86_64__)
    switch (half_level()) {
    case 2: f32_to_f16_avx512(src, dst, count); return;
    case 1: f32_to_f16_f16c(src, dst, count); return;
    default: break;
    }
#endif
    f32_to_f16_portable(src, dst, count);
}

// MARK: - bfloat16 (safetensors BF16 checkpoints)

void dpo_bf16_to_f32(const uint16_t *src, float *dst, size_t count) {
    for (size_t i = 0; i < count; i++) {
        uint32_t bits = (uint32_t)src[i] << 16;
        memcpy(dst + i, &bits, 4);
    }
}

void dpo_f32_to_bf16(const float *src, uint16_t *dst, size_t count) {
    for (size_t i = 0; i < count; i++) {
        uint32_t x;
        memcpy(&x, src + i, 4);
        if ((x & 0x7fffffffu) > 0x7f800000u) {
            dst[i] = (uint16_t)((x >> 16) | 0x40);  // quiet NaN
        } else {
            uint32_t rounding = 0x7fff + ((x >> 16) & 1);
            dst[i] = (uint16_t)((x + rounding) >> 16);
        }
    }
}
