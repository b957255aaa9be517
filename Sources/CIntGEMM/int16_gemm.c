// Integer GEMM for the entropy model's exact layers (see psic_int_gemm.h).
//
// The AVX2 kernel keeps a 4-row x 16-column block of C in eight registers. B is packed per
// call into pairs of consecutive k for each column, so one 256-bit load holds 8 columns' pairs
// and vpmaddwd against a broadcast pair of A gives 8 partial sums of two products each.
#include "psic_int_gemm.h"

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define PSIC_X86 1
#endif

void psic_int16_gemm_portable(int m, int n, int k, const int16_t *a, int lda, const int16_t *b, int ldb,
                              int32_t *c, int ldc) {
    for (int i = 0; i < m; i++) {
        int32_t *crow = c + (long)i * ldc;
        for (int j = 0; j < n; j++) crow[j] = 0;
        for (int p = 0; p < k; p++) {
            int32_t w = a[(long)i * lda + p];
            if (w == 0) continue;
            const int16_t *brow = b + (long)p * ldb;
            for (int j = 0; j < n; j++) crow[j] += w * (int32_t)brow[j];
        }
    }
}

#ifdef PSIC_X86
enum { NB = 16, MB = 4 };

// Packs B into [k/2][n rounded up to NB][2]: the pair (B[2q][j], B[2q+1][j]) for each column,
// zero past k and n.
static int16_t *pack_b(int n, int k, const int16_t *b, int ldb, int np) {
    int kp = (k + 1) / 2;
    int16_t *packed = aligned_alloc(32, ((size_t)kp * np * 2 * sizeof(int16_t) + 31) / 32 * 32);
    if (!packed) return NULL;
    for (int q = 0; q < kp; q++) {
        int16_t *dst = packed + (size_t)q * np * 2;
        const int16_t *r0 = b + (long)(2 * q) * ldb;
        const int16_t *r1 = 2 * q + 1 < k ? b + (long)(2 * q + 1) * ldb : NULL;
        for (int j = 0; j < n; j++) {
            dst[2 * j] = r0[j];
            dst[2 * j + 1] = r1 ? r1[j] : 0;
        }
        memset(dst + 2 * n, 0, (size_t)(np - n) * 2 * sizeof(int16_t));
    }
    return packed;
}

__attribute__((target("avx2")))
static int gemm_avx2(int m, int n, int k, const int16_t *a, int lda, const int16_t *b, int ldb,
                     int32_t *c, int ldc) {
    int np = (n + NB - 1) / NB * NB, kp = (k + 1) / 2;
    int16_t *packed = pack_b(n, k, b, ldb, np);
    if (!packed) return 0;
    // A's pairs as 32-bit words, one row after another (k odd: the last pair is padded).
    int32_t *pairs = malloc((size_t)m * kp * sizeof(int32_t) + 4);
    if (!pairs) { free(packed); return 0; }
    for (int i = 0; i < m; i++) {
        for (int q = 0; q < kp; q++) {
            uint16_t lo = (uint16_t)a[(long)i * lda + 2 * q];
            uint16_t hi = 2 * q + 1 < k ? (uint16_t)a[(long)i * lda + 2 * q + 1] : 0;
            pairs[(size_t)i * kp + q] = (int32_t)((uint32_t)lo | ((uint32_t)hi << 16));
        }
    }
    int32_t edge[MB][NB] __attribute__((aligned(32)));
    for (int j0 = 0; j0 < np; j0 += NB) {
        int cols = n - j0 < NB ? n - j0 : NB;
        for (int i0 = 0; i0 < m; i0 += MB) {
            int rows = m - i0 < MB ? m - i0 : MB;
            __m256i acc[MB][2];
            for (int r = 0; r < MB; r++) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
            const int16_t *bp = packed + (size_t)j0 * 2;
            for (int q = 0; q < kp; q++, bp += (size_t)np * 2) {
                __m256i b0 = _mm256_load_si256((const __m256i *)bp);
                __m256i b1 = _mm256_load_si256((const __m256i *)(bp + 16));
                for (int r = 0; r < MB; r++) {
                    if (r >= rows) break;
                    __m256i w = _mm256_set1_epi32(pairs[(size_t)(i0 + r) * kp + q]);
                    acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(b0, w));
                    acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(b1, w));
                }
            }
            for (int r = 0; r < rows; r++) {
                int32_t *dst = c + (long)(i0 + r) * ldc + j0;
                if (cols == NB) {
                    _mm256_storeu_si256((__m256i *)dst, acc[r][0]);
                    _mm256_storeu_si256((__m256i *)(dst + 8), acc[r][1]);
                } else {
                    _mm256_store_si256((__m256i *)edge[r], acc[r][0]);
                    _mm256_store_si256((__m256i *)(edge[r] + 8), acc[r][1]);
                    memcpy(dst, edge[r], (size_t)cols * sizeof(int32_t));
                }
            }
        }
    }
    free(pairs);
    free(packed);
    return 1;
}
#endif

int psic_int16_gemm_uses_avx2(void) {
#ifdef PSIC_X86
    return __builtin_cpu_supports("avx2") ? 1 : 0;
#else
    return 0;
#endif
}

void psic_int16_gemm(int m, int n, int k, const int16_t *a, int lda, const int16_t *b, int ldb,
                     int32_t *c, int ldc) {
    if (m <= 0 || n <= 0) return;
#ifdef PSIC_X86
    if (k > 0 && psic_int16_gemm_uses_avx2() && gemm_avx2(m, n, k, a, lda, b, ldb, c, ldc)) return;
#endif
    psic_int16_gemm_portable(m, n, k, a, lda, b, ldb, c, ldc);
}
