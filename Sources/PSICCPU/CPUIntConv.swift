import CIntGEMM
import COpenBLAS
import Foundation
import PSICEngine

/// Integer convolution and transposed convolution, exact, through a GEMM.
///
/// Every input, weight and bias is an integer, and the layer's initialiser proved that every
/// partial sum stays below 2^31 in magnitude. Two GEMMs keep that exact:
/// - `Int16GEMM` when the inputs fit 16 bits (the shipped model's layers: inputs within
///   ±32767, weights Int16): 16-bit products summed in 32-bit integers (`psic_int16_gemm`,
///   vpmaddwd on AVX2), whose partial sums are bounded like the accumulator's;
/// - `DoubleGEMM` otherwise: doubles represent all integers below 2^53 exactly, so each product
///   and partial sum in DGEMM is exact whatever the summation order or use of FMA.
/// Either way the result *is* the Int32 accumulator; the requantisation then happens in Int64.
enum CPUIntConv {
    /// `$PSIC_CPU_INT_GEMM=double` runs every layer through DGEMM (for measuring the two side by side).
    static let alwaysDouble = ProcessInfo.processInfo.environment["PSIC_CPU_INT_GEMM"] == "double"

    /// The layer of one graph node, ready to run: its weights converted (and, for transposed
    /// layers, transposed) once and every buffer allocated here, so a run allocates nothing and
    /// a refused allocation surfaces at prepare.
    static func prepare(_ l: IntConv2dLayer, inputShape: TensorShape, outputShape: TensorShape) throws -> CPUIntConvKernel {
        // The closures call `run` on a concrete type, which the optimiser specialises; through a
        // protocol witness it ran the generic body: the six layers of the codec took 2.5× as long.
        if l.inputBound <= Int32(Int16.max) && !alwaysDouble {
            let kernel = try PreparedIntConv<Int16GEMM>(l, inputShape: inputShape, outputShape: outputShape)
            return CPUIntConvKernel(weightBytes: kernel.w.bytes, work: kernel.work) { kernel.run(input: $0, output: $1, threads: $2) }
        }
        let kernel = try PreparedIntConv<DoubleGEMM>(l, inputShape: inputShape, outputShape: outputShape)
        return CPUIntConvKernel(weightBytes: kernel.w.bytes, work: kernel.work) { kernel.run(input: $0, output: $1, threads: $2) }
    }
}

/// A prepared integer convolution (`CPUIntConv.prepare`).
struct CPUIntConvKernel {
    /// Bytes of its converted weights.
    let weightBytes: Int
    /// Its work buffers (the input converted, the accumulator, the columns): rewritten by every
    /// run, so an idle graph may release them.
    let work: [CPUPages]
    /// Computes the node's output from its input (both planar NCHW, the shapes it was prepared
    /// for) on the given number of threads.
    let run: (_ input: UnsafeMutablePointer<Int32>, _ output: UnsafeMutablePointer<Int32>, _ threads: Int) -> Void
}

private final class PreparedIntConv<G: ExactGEMM> {
    let layer: IntConv2dLayer
    let inputShape: TensorShape, outputShape: TensorShape
    /// Rows of one band: of the output for convolutions, of the input for transposed ones. Bands
    /// bound the column matrix (huge images would need gigabytes at once).
    let bandRows: Int
    /// The input converted to the GEMM's operand type.
    let x: Buffer<G.Operand>
    /// The weights as the GEMM's A: [cout][cin·k·k] for convolutions, [cout·k·k][cin] for
    /// transposed ones.
    let w: Buffer<G.Operand>
    let acc: Buffer<G.Accumulator>
    /// One band's columns: im2col operands for convolutions, per-tap products for transposed ones.
    let operandColumns: Buffer<G.Operand>?
    let productColumns: Buffer<G.Accumulator>?

    init(_ l: IntConv2dLayer, inputShape: TensorShape, outputShape: TensorShape) throws {
        layer = l
        self.inputShape = inputShape
        self.outputShape = outputShape
        let k = l.kernelSize, cin = l.inChannels, cout = l.outChannels
        x = try Buffer(count: inputShape.count)
        acc = try Buffer(count: outputShape.count)
        w = try Buffer(count: l.weights.count)
        if !l.transposed {
            for (i, v) in l.weights.enumerated() { w[i] = G.operand(Int32(v)) }
            let kdim = cin * k * k, wo = outputShape.width
            bandRows = max(1, min(outputShape.height, CPUConv2d.bandBudget / max(1, kdim * wo)))
            let pointwise = k == 1 && l.stride == 1 && l.padding == 0
            operandColumns = pointwise ? nil : try Buffer(count: kdim * bandRows * wo)
            productColumns = nil
        } else {
            // Stored [cin][cout·k·k]; transposed so the GEMM reads rows.
            let rowsOfA = cout * k * k
            for ci in 0..<cin {
                for r in 0..<rowsOfA { w[r * cin + ci] = G.operand(Int32(l.weights[ci * rowsOfA + r])) }
            }
            let wi = inputShape.width
            bandRows = max(1, min(inputShape.height, CPUConv2d.bandBudget / max(1, rowsOfA * wi)))
            operandColumns = nil
            productColumns = try Buffer(count: rowsOfA * bandRows * wi)
        }
    }

    /// The buffers every run overwrites in full before reading them.
    var work: [CPUPages] { [x.pages, acc.pages] + [operandColumns?.pages, productColumns?.pages].compactMap { $0 } }

    func run(input: UnsafeMutablePointer<Int32>, output: UnsafeMutablePointer<Int32>, threads: Int) {
        let l = layer
        let x = x.pointer, acc = acc.pointer
        // Inputs lie within ±inputBound by the layer's contract; clamping only keeps a broken
        // contract from trapping in the conversion.
        for i in 0..<inputShape.count { x[i] = G.operand(min(max(input[i], -l.inputBound), l.inputBound)) }
        if let cols = operandColumns?.pointer {
            convolve(x: x, cols: cols, acc: acc, threads: threads)
        } else if let cols = productColumns?.pointer {
            convolveTransposed(x: x, cols: cols, acc: acc, threads: threads)
        } else {
            G.gemm(m: l.outChannels, n: outputShape.height * outputShape.width, k: l.inChannels, a: w.pointer,
                   lda: l.inChannels, b: x, ldb: outputShape.height * outputShape.width, c: acc,
                   ldc: outputShape.height * outputShape.width, threads: threads)
        }
        let rq = l.requantization
        let plane = outputShape.height * outputShape.width
        parallelFor(l.outChannels, threads: threads) { co in
            let b = l.bias[co]
            let a = acc + co * plane, dst = output + co * plane
            for i in 0..<plane { dst[i] = G.int32(a[i]) &+ b }
            rq.apply(dst, count: plane, channel: co)
        }
    }

    /// im2col of each band of output rows, then W·columns.
    private func convolve(x: UnsafeMutablePointer<G.Operand>, cols: UnsafeMutablePointer<G.Operand>,
                          acc: UnsafeMutablePointer<G.Accumulator>, threads: Int) {
        let k = layer.kernelSize, s = layer.stride, p = layer.padding
        let hi = inputShape.height, wi = inputShape.width
        let ho = outputShape.height, wo = outputShape.width
        let kdim = layer.inChannels * k * k, n = ho * wo
        var row0 = 0
        while row0 < ho {
            let rows = min(bandRows, ho - row0), bn = rows * wo
            parallelFor(kdim, threads: threads) { r in
                let ci = r / (k * k), ky = (r / k) % k, kx = r % k
                let xr = validOutputRange(outputSize: wo, inputSize: wi, stride: s, padding: p, tap: kx)
                for oy in 0..<rows {
                    let row = cols + r * bn + oy * wo
                    row.update(repeating: .zero, count: wo)
                    let iy = (row0 + oy) * s - p + ky
                    guard iy >= 0, iy < hi else { continue }
                    let src = x + ci * hi * wi + iy * wi - p + kx
                    for ox in xr { row[ox] = src[ox * s] }
                }
            }
            G.gemm(m: layer.outChannels, n: bn, k: kdim, a: w.pointer, lda: kdim, b: cols, ldb: bn, c: acc + row0 * wo,
                   ldc: n, threads: threads)
            row0 += rows
        }
    }

    /// Wᵀ·X gives every tap's contribution for a band of input rows; col2im adds them up
    /// (exactly, as every sum is an integer below 2^31).
    private func convolveTransposed(x: UnsafeMutablePointer<G.Operand>, cols: UnsafeMutablePointer<G.Accumulator>,
                                    acc: UnsafeMutablePointer<G.Accumulator>, threads: Int) {
        let k = layer.kernelSize, s = layer.stride, p = layer.padding
        let hi = inputShape.height, wi = inputShape.width
        let ho = outputShape.height, wo = outputShape.width
        let cin = layer.inChannels, cout = layer.outChannels, rowsOfA = cout * k * k
        acc.update(repeating: .zero, count: outputShape.count)
        var row0 = 0
        while row0 < hi {
            let rows = min(bandRows, hi - row0), bn = rows * wi
            G.gemm(m: rowsOfA, n: bn, k: cin, a: w.pointer, lda: cin, b: x + row0 * wi, ldb: hi * wi, c: cols, ldc: bn,
                   threads: threads)
            parallelFor(cout, threads: threads) { co in
                col2imAdd(into: acc + co * ho * wo, columns: cols, channel: co, columnLength: bn,
                          kernelSize: k, stride: s, padding: p,
                          inputWidth: wi, bandRows: rows, firstRow: row0, outputHeight: ho, outputWidth: wo)
            }
            row0 += rows
        }
    }
}

/// Memory for `count` values in pages of its own (an error, not a trap, when refused).
private final class Buffer<T> {
    let pages: CPUPages
    let pointer: UnsafeMutablePointer<T>
    var bytes: Int { pages.bytes }

    init(count: Int) throws {
        pages = try CPUPages(bytes: max(1, count) * MemoryLayout<T>.stride)
        pointer = pages.pointer.bindMemory(to: T.self, capacity: max(1, count))
    }

    subscript(i: Int) -> T {
        get { pointer[i] }
        set { pointer[i] = newValue }
    }
}

/// An exact GEMM for the integer layers: operand and accumulator types and C = A·B over them,
/// with the columns split across threads (the BLAS underneath runs single-threaded).
protocol ExactGEMM {
    associatedtype Operand: AdditiveArithmetic
    associatedtype Accumulator: AdditiveArithmetic
    static func operand(_ v: Int32) -> Operand
    static func int32(_ a: Accumulator) -> Int32
    static func gemm(m: Int, n: Int, k: Int, a: UnsafePointer<Operand>, lda: Int, b: UnsafePointer<Operand>, ldb: Int,
                     c: UnsafeMutablePointer<Accumulator>, ldc: Int, threads: Int)
}

/// 16-bit operands, 32-bit sums (`psic_int16_gemm`).
enum Int16GEMM: ExactGEMM {
    static func operand(_ v: Int32) -> Int16 { Int16(v) }
    static func int32(_ a: Int32) -> Int32 { a }
    static func gemm(m: Int, n: Int, k: Int, a: UnsafePointer<Int16>, lda: Int, b: UnsafePointer<Int16>, ldb: Int,
                     c: UnsafeMutablePointer<Int32>, ldc: Int, threads: Int) {
        forEachColumnChunk(n: n, threads: threads) { j0, count in
            psic_int16_gemm(Int32(m), Int32(count), Int32(k), a, Int32(lda), b + j0, Int32(ldb), c + j0, Int32(ldc))
        }
    }
}

/// Doubles through OpenBLAS's DGEMM.
enum DoubleGEMM: ExactGEMM {
    static func operand(_ v: Int32) -> Double { Double(v) }
    static func int32(_ a: Double) -> Int32 { Int32(a) }
    static func gemm(m: Int, n: Int, k: Int, a: UnsafePointer<Double>, lda: Int, b: UnsafePointer<Double>, ldb: Int,
                     c: UnsafeMutablePointer<Double>, ldc: Int, threads: Int) {
        forEachColumnChunk(n: n, threads: threads) { j0, count in
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, blasint(m), blasint(count), blasint(k), 1, a,
                        blasint(lda), b + j0, blasint(ldb), 0, c + j0, blasint(ldc))
        }
    }
}
