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
                    col2imAdd(into: output + co * ho * wo, columns: cols, channel: co, columnLength: n,
                              kernelSize: k, stride: s, padding: p,
                              inputWidth: wi, bandRows: rows, firstRow: row0, outputHeight: ho, outputWidth: wo)
                }
                row0 += rows
            }
        }
        applyBiasAndActivation(output, channels: l.outChannels, plane: ho * wo, bias: l.bias,
                               activation: l.activation, threads: threads)
    }
}
