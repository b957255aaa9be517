import COpenBLAS
import PSICEngine

/// Integer convolution and transposed convolution, exact, through double-precision GEMM.
///
/// Every input, weight and bias is an integer, and the layer's initialiser proved that every
/// partial sum stays below 2^31 in magnitude. Doubles represent all integers below 2^53
/// exactly, so each product and each partial sum in DGEMM is exact whatever the summation
/// order or use of FMA: the Double result *is* the Int32 accumulator. This runs the integer
/// layers at BLAS speed with bit-exact results; the requantisation then happens in Int64.
enum CPUIntConv {
    static func run(_ l: IntConv2dLayer, input: UnsafeMutablePointer<Int32>, inputShape: TensorShape,
                    output: UnsafeMutablePointer<Int32>, outputShape: TensorShape, threads: Int) {
        let k = l.kernelSize, s = l.stride, p = l.padding
        let hi = inputShape.height, wi = inputShape.width
        let ho = outputShape.height, wo = outputShape.width
        let cin = l.inChannels, cout = l.outChannels
        let x = UnsafeMutablePointer<Double>.allocate(capacity: inputShape.count)
        let acc = UnsafeMutablePointer<Double>.allocate(capacity: outputShape.count)
        let w = UnsafeMutablePointer<Double>.allocate(capacity: l.weights.count)
        defer { x.deallocate(); acc.deallocate(); w.deallocate() }
        for i in 0..<inputShape.count { x[i] = Double(input[i]) }
        for (i, v) in l.weights.enumerated() { w[i] = Double(v) }

        if !l.transposed {
            let kdim = cin * k * k
            let n = ho * wo
            if k == 1 && s == 1 && p == 0 {
                dgemm(transposeA: false, m: cout, n: n, k: cin, a: w, lda: cin, b: x, ldb: n, c: acc, ldc: n, threads: threads)
            } else {
                // Row bands bound the column matrix (huge images would need gigabytes at once).
                let bandRows = max(1, min(ho, CPUConv2d.bandBudget / max(1, kdim * wo)))
                let cols = UnsafeMutablePointer<Double>.allocate(capacity: kdim * bandRows * wo)
                defer { cols.deallocate() }
                var row0 = 0
                while row0 < ho {
                    let rows = min(bandRows, ho - row0), bn = rows * wo
                    parallelFor(kdim, threads: threads) { r in
                        let ci = r / (k * k), ky = (r / k) % k, kx = r % k
                        let xr = validOutputRange(outputSize: wo, inputSize: wi, stride: s, padding: p, tap: kx)
                        for oy in 0..<rows {
                            let row = cols + r * bn + oy * wo
                            row.update(repeating: 0, count: wo)
                            let iy = (row0 + oy) * s - p + ky
                            guard iy >= 0, iy < hi else { continue }
                            let src = x + ci * hi * wi + iy * wi - p + kx
                            for ox in xr { row[ox] = src[ox * s] }
                        }
                    }
                    dgemm(transposeA: false, m: cout, n: bn, k: kdim, a: w, lda: kdim, b: cols, ldb: bn,
                          c: acc + row0 * wo, ldc: n, threads: threads)
                    row0 += rows
                }
            }
        } else {
            // Wᵀ·X gives every tap's contribution; col2im adds them up (exactly, as above).
            let rowsOfA = cout * k * k
            let bandRows = max(1, min(hi, CPUConv2d.bandBudget / max(1, rowsOfA * wi)))
            let cols = UnsafeMutablePointer<Double>.allocate(capacity: rowsOfA * bandRows * wi)
            defer { cols.deallocate() }
            acc.update(repeating: 0, count: outputShape.count)
            var row0 = 0
            while row0 < hi {
                let rows = min(bandRows, hi - row0), bn = rows * wi
                dgemm(transposeA: true, m: rowsOfA, n: bn, k: cin, a: w, lda: rowsOfA, b: x + row0 * wi, ldb: hi * wi,
                      c: cols, ldc: bn, threads: threads)
                parallelFor(cout, threads: threads) { co in
                    let dst = acc + co * ho * wo
                    for ky in 0..<k {
                        for kx in 0..<k {
                            let src = cols + ((co * k + ky) * k + kx) * bn
                            let lo = max(0, (p - kx + s - 1) / s)
                            let hiX = min(wi, floorDivide(wo - 1 + p - kx, s) + 1)
                            guard lo < hiX else { continue }
                            for iy in 0..<rows {
                                let oy = (row0 + iy) * s - p + ky
                                guard oy >= 0, oy < ho else { continue }
                                let drow = dst + oy * wo - p + kx
                                let srow = src + iy * wi
                                for ix in lo..<hiX { drow[ix * s] += srow[ix] }
                            }
                        }
                    }
                }
                row0 += rows
            }
        }
        let rq = l.requantization
        let plane = ho * wo
        parallelFor(cout, threads: threads) { co in
            let b = l.bias[co]
            let a = acc + co * plane, dst = output + co * plane
            for i in 0..<plane { dst[i] = rq.apply(Int32(a[i]) &+ b, channel: co) }
        }
    }

    /// DGEMM with the columns split across `threads` threads (OpenBLAS runs single-threaded).
    private static func dgemm(transposeA: Bool, m: Int, n: Int, k: Int, a: UnsafePointer<Double>, lda: Int,
                              b: UnsafePointer<Double>, ldb: Int, c: UnsafeMutablePointer<Double>, ldc: Int,
                              threads: Int) {
        forEachColumnChunk(n: n, threads: threads) { j0, count in
            cblas_dgemm(CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, CblasNoTrans,
                        blasint(m), blasint(count), blasint(k), 1, a, blasint(lda), b + j0, blasint(ldb), 0,
                        c + j0, blasint(ldc))
        }
    }
}
