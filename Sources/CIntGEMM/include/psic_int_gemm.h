#ifndef PSIC_INT_GEMM_H
#define PSIC_INT_GEMM_H

#include <stdint.h>

/// C[i][j] = sum over p of A[i][p] * B[p][j], for 0 <= i < m, 0 <= j < n, in 32-bit integers:
/// A is m x k (row stride lda), B is k x n (row stride ldb), C is m x n (row stride ldc).
/// Exact as long as every partial sum fits in int32 (the caller's accumulator bound); with AVX2
/// the products run as pairs of 16-bit multiplies summed into 32 bits (vpmaddwd), whose pair
/// sums cannot overflow for 16-bit operands other than two pairs of -32768 * -32768.
void psic_int16_gemm(int m, int n, int k, const int16_t *a, int lda, const int16_t *b, int ldb,
                     int32_t *c, int ldc);

/// 1 when psic_int16_gemm runs its AVX2 kernel on this CPU, 0 for the portable loop.
int psic_int16_gemm_uses_avx2(void);

/// The portable loop alone (what CPUs without AVX2 run), for tests on CPUs with it.
void psic_int16_gemm_portable(int m, int n, int k, const int16_t *a, int lda, const int16_t *b, int ldb,
                              int32_t *c, int ldc);

#endif
