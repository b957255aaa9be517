import PSICEngine

/// Float convolution as im2col + SGEMM, in bands of output rows so the column matrix stays
/// in a bounded scratch buffer (a 5x5 conv over 128 channels at 384x256 would need 300 MB at once).
/// Each thread takes whole bands, im2col and GEMM, so no thread waits for another between them.
enum CPUConv2d {
    /// Column-matrix budget per band, in floats (16 MiB); one band per thread is in flight.
    static let bandBudget = 4 << 20

    static func run(_ l: Conv2dLayer, input: UnsafeMutablePointer<Float>, inputShape: TensorShape,
                    output: UnsafeMutablePointer<Float>, outputShape: TensorShape,
                    scratch: CPUScratch, threads: Int) throws {
        let k = l.kernelSize, s = l.stride, p = l.padding
        let hi = inputShape.height, wi = inputShape.width
        let ho = outputShape.height, wo = outputShape.width
        let hw = ho * wo
        let kdim = l.inChannels * k * k
        try l.weights.withUnsafeBufferPointer { w in
            if k == 1 && s == 1 && p == 0 {
                parallelSGEMM(m: l.outChannels, n: hw, k: l.inChannels, a: w.baseAddress!, lda: l.inChannels,
                              b: input, ldb: inputShape.planeSize, c: output, ldc: hw, threads: threads)
                return
            }
            // At least one band per thread; within the budget otherwise.
            let bandRows = max(1, min((ho + threads - 1) / threads, bandBudget / max(1, kdim * wo)))
            let bands = (ho + bandRows - 1) / bandRows
            let workers = min(threads, bands)
            // A strided conv reads every s-th input column. Splitting the band's input rows into
            // s column phases first (one pass over the input) turns each column-matrix row into a
            // contiguous copy; gathering with stride s straight into it was a quarter of the conv time.
            let phaseWidth = (wi + s - 1) / s
            let bandInputRows = (bandRows - 1) * s + k
            let phaseFloats = s > 1 ? l.inChannels * s * bandInputRows * phaseWidth : 0
            let perWorker = kdim * bandRows * wo + phaseFloats
            let buffer = try scratch.floats(workers * perWorker)
            parallelFor(workers, threads: workers) { worker in
                let cols = buffer + worker * perWorker, phases = cols + kdim * bandRows * wo
                for band in stride(from: worker, to: bands, by: workers) {
                    let row0 = band * bandRows
                    let rows = min(bandRows, ho - row0)
                    let n = rows * wo
                    let firstInputRow = row0 * s - p
                    if s > 1 {
                        let inRows = (rows - 1) * s + k
                        for ci in 0..<l.inChannels {
                            for r in 0..<inRows {
                                let iy = firstInputRow + r
                                guard iy >= 0, iy < hi else { continue }
                                let src = input + ci * hi * wi + iy * wi
                                let dst = phases + (ci * s * bandInputRows + r) * phaseWidth
                                for phase in 0..<s {
                                    let plane = dst + phase * bandInputRows * phaseWidth
                                    var j = 0, x = phase
                                    while x < wi { plane[j] = src[x]; j += 1; x += s }
                                }
                            }
                        }
                    }
                    for r in 0..<kdim {
                        let ci = r / (k * k), ky = (r / k) % k, kx = r % k
                        let dst = cols + r * n
                        let src = input + ci * hi * wi
                        let xr = validOutputRange(outputSize: wo, inputSize: wi, stride: s, padding: p, tap: kx)
                        // Input column of output ox is ox * s + (kx - p) = (ox + shift) * s + phase.
                        let phase = ((kx - p) % s + s) % s, shift = floorDivide(kx - p, s)
                        for oy in 0..<rows {
                            let row = dst + oy * wo
                            let iy = (row0 + oy) * s - p + ky
                            guard iy >= 0, iy < hi, !xr.isEmpty else {
                                row.update(repeating: 0, count: wo)
                                continue
                            }
                            if xr.lowerBound > 0 { row.update(repeating: 0, count: xr.lowerBound) }
                            if xr.upperBound < wo { (row + xr.upperBound).update(repeating: 0, count: wo - xr.upperBound) }
                            let from: UnsafeMutablePointer<Float>
                            if s == 1 {
                                from = src + iy * wi - p + kx
                            } else {
                                from = phases + ((ci * s + phase) * bandInputRows + (iy - firstInputRow)) * phaseWidth + shift
                            }
                            (row + xr.lowerBound).update(from: from + xr.lowerBound, count: xr.count)
                        }
                    }
                    sgemm(m: l.outChannels, n: n, k: kdim, a: w.baseAddress!, lda: kdim,
                          b: cols, ldb: n, c: output + row0 * wo, ldc: hw)
                }
            }
        }
        applyBiasAndActivation(output, channels: l.outChannels, plane: hw, bias: l.bias,
                               activation: l.activation, threads: threads)
    }
}
