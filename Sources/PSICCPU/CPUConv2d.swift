import PSICEngine

/// Float convolution as im2col + SGEMM, in bands of output rows so the column matrix stays
/// in a bounded scratch buffer (a 5x5 conv over 128 channels at 384x256 would need 300 MB at once).
enum CPUConv2d {
    /// Column-matrix budget per band, in floats (16 MiB).
    static let bandBudget = 4 << 20

    static func run(_ l: Conv2dLayer, input: UnsafeMutablePointer<Float>, inputShape: TensorShape,
                    output: UnsafeMutablePointer<Float>, outputShape: TensorShape,
                    scratch: CPUScratch, threads: Int) {
        let k = l.kernelSize, s = l.stride, p = l.padding
        let hi = inputShape.height, wi = inputShape.width
        let ho = outputShape.height, wo = outputShape.width
        let hw = ho * wo
        let kdim = l.inChannels * k * k
        l.weights.withUnsafeBufferPointer { w in
            if k == 1 && s == 1 && p == 0 {
                sgemm(m: l.outChannels, n: hw, k: l.inChannels, a: w.baseAddress!, lda: l.inChannels,
                      b: input, ldb: inputShape.planeSize, c: output, ldc: hw)
                return
            }
            let bandRows = max(1, min(ho, bandBudget / max(1, kdim * wo)))
            let cols = scratch.floats(kdim * bandRows * wo)
            var row0 = 0
            while row0 < ho {
                let rows = min(bandRows, ho - row0)
                let n = rows * wo
                parallelFor(kdim, threads: threads) { r in
                    let ci = r / (k * k), ky = (r / k) % k, kx = r % k
                    let dst = cols + r * n
                    let src = input + ci * hi * wi
                    let xr = validOutputRange(outputSize: wo, inputSize: wi, stride: s, padding: p, tap: kx)
                    for oy in 0..<rows {
                        let row = dst + oy * wo
                        let iy = (row0 + oy) * s - p + ky
                        guard iy >= 0, iy < hi, !xr.isEmpty else {
                            row.update(repeating: 0, count: wo)
                            continue
                        }
                        if xr.lowerBound > 0 { row.update(repeating: 0, count: xr.lowerBound) }
                        if xr.upperBound < wo { (row + xr.upperBound).update(repeating: 0, count: wo - xr.upperBound) }
                        let srow = src + iy * wi - p + kx
                        if s == 1 {
                            (row + xr.lowerBound).update(from: srow + xr.lowerBound, count: xr.count)
                        } else {
                            for ox in xr { row[ox] = srow[ox * s] }
                        }
                    }
                }
                sgemm(m: l.outChannels, n: n, k: kdim, a: w.baseAddress!, lda: kdim,
                      b: cols, ldb: n, c: output + row0 * wo, ldc: hw)
                row0 += rows
            }
        }
        applyBiasAndActivation(output, channels: l.outChannels, plane: hw, bias: l.bias,
                               activation: l.activation, threads: threads)
    }
}
