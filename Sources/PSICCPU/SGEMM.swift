import COpenBLAS

/// Row-major single-precision GEMM through OpenBLAS: `C = op(A) · B` (beta 0) or `C += op(A) · B`.
@inline(__always)
func sgemm(transposeA: Bool = false, m: Int, n: Int, k: Int,
           a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
           c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool = false) {
    cblas_sgemm(CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, CblasNoTrans,
                blasint(m), blasint(n), blasint(k), 1, a, blasint(lda), b, blasint(ldb),
                accumulate ? 1 : 0, c, blasint(ldc))
}
