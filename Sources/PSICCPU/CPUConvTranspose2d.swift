import PSICEngine

/// Float transposed convolution as SGEMM (`Wᵀ · X` gives every tap's contribution) followed by a
/// col2im scatter-add, in bands of input rows to bound the column matrix.
enum CPUConvTranspose2d {
    static func run(_ l: ConvTranspose2dLayer, input: UnsafeMutablePointer<Float>, inputShape: TensorShape,
                    output: UnsafeMutablePointer<Float>, outputShape: TensorShape,
                    scratch: CPUScratch, threads: Int) throws {
        let k = l.kernelSize, s = l.stride, p = l.padding
        let hi = inputShape.height, wi = inputShape.width
        let ho = outputShape.height, wo = outputShape.width
        let rowsOfA = l.outChannels * k * k
        output.update(repeating: 0, count: l.outChannels * ho * wo)
        let bandRows = max(1, min(hi, CPUConv2d.bandBudget / max(1, rowsOfA * wi)))
        let cols = try scratch.floats(rowsOfA * bandRows * wi)
        l.weights.withUnsafeBufferPointer { w in
            var row0 = 0
            while row0 < hi {
                let rows = min(bandRows, hi - row0)
                let n = rows * wi
                // Weights are [in][out][k][k]: as a matrix [in][out*k*k], so op(A) = Aᵀ.
                parallelSGEMM(transposeA: true, m: rowsOfA, n: n, k: l.inChannels, a: w.baseAddress!, lda: rowsOfA,
                              b: input + row0 * wi, ldb: inputShape.planeSize, c: cols, ldc: n, threads: threads)
                parallelFor(l.outChannels, threads: threads) { co in
                    let dst = output + co * ho * wo
                    for ky in 0..<k {
                        for kx in 0..<k {
                            let src = cols + ((co * k + ky) * k + kx) * n
                            // Output column ox = ix * s - p + kx must lie in 0..<wo.
                            let lo = max(0, (p - kx + s - 1) / s)
                            let hiX = min(wi, floorDivide(wo - 1 + p - kx, s) + 1)
                            guard lo < hiX else { continue }
                            for iy in 0..<rows {
                                let oy = (row0 + iy) * s - p + ky
                                guard oy >= 0, oy < ho else { continue }
                                let drow = dst + oy * wo - p + kx
                                let srow = src + iy * wi
                                if s == 1 {
                                    for ix in lo..<hiX { drow[ix] += srow[ix] }
                                } else {
                                    for ix in lo..<hiX { drow[ix * s] += srow[ix] }
                                }
                            }
                        }
                    }
                }
                row0 += rows
            }
        }
        applyBiasAndActivation(output, channels: l.outChannels, plane: ho * wo, bias: l.bias,
                               activation: l.activation, threads: threads)
    }
}
