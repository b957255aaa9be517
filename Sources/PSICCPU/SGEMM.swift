import COpenBLAS

/// Row-major single-precision GEMM through OpenBLAS: `C = op(A) · B` (beta 0) or `C += op(A) · B`,
/// on the calling thread (see `BLASThreading`).
@inline(__always)
func sgemm(transposeA: Bool = false, m: Int, n: Int, k: Int,
           a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
           c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool = false) {
    cblas_sgemm(CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, CblasNoTrans,
                blasint(m), blasint(n), blasint(k), 1, a, blasint(lda), b, blasint(ldb),
                accumulate ? 1 : 0, c, blasint(ldc))
}

/// `sgemm` with the columns of `B` and `C` split across `threads` threads.
func parallelSGEMM(transposeA: Bool = false, m: Int, n: Int, k: Int,
                   a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                   c: UnsafeMutablePointer<Float>, ldc: Int, threads: Int) {
    forEachColumnChunk(n: n, threads: threads) { j0, count in
        sgemm(transposeA: transposeA, m: m, n: count, k: k, a: a, lda: lda, b: b + j0, ldb: ldb, c: c + j0, ldc: ldc)
    }
}

/// Splits `0..<n` into at most `threads` chunks (multiples of 16 columns, so each chunk's GEMM
/// keeps whole vector-width tiles) and runs `body(start, count)` for each in parallel.
func forEachColumnChunk(n: Int, threads: Int, _ body: (Int, Int) -> Void) {
    let chunk = max(16, (n + threads - 1) / threads + 15) / 16 * 16
    let chunks = (n + chunk - 1) / chunk
    parallelFor(chunks, threads: threads) { i in
        let j0 = i * chunk
        body(j0, min(chunk, n - j0))
    }
}

/// The CPU backend runs OpenBLAS single-threaded inside its own threads. OpenBLAS's pool
/// would otherwise keep spinning after each call (by default for 2^28 cycles, about 0.1 s),
/// taking a core from the im2col and col2im loops that run between GEMMs: measured on the
/// analysis transform's 5x5/2 convs, ~73 GFLOP/s with the spin against ~89 with it cut
/// (`OPENBLAS_THREAD_TIMEOUT=4`), same machine, runs interleaved.
enum BLASThreading {
    /// Evaluated once, by every `CPUBackend` before it runs anything.
    static let singleThreaded: Void = { openblas_set_num_threads(1) }()
}
