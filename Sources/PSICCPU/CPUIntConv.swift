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

    static func run(_ l: IntConv2dLayer, input: UnsafeMutablePointer<Int32>, inputShape: TensorShape,
                    output: UnsafeMutablePointer<Int32>, outputShape: TensorShape, threads: Int) throws {
        if l.inputBound <= Int32(Int16.max) && !alwaysDouble {
            try run(Int16GEMM.self, l, input: input, inputShape: inputShape, output: output, outputShape: outputShape, threads: threads)
        } else {
            try run(DoubleGEMM.self, l, input: input, inputShape: inputShape, output: output, outputShape: outputShape, threads: threads)
        }
    }

    static func run<G: ExactGEMM>(_: G.Type, _ l: IntConv2dLayer, input: UnsafeMutablePointer<Int32>, inputShape: TensorShape,
                                  output: UnsafeMutablePointer<Int32>, outputShape: TensorShape, threads: Int) throws {
        let k = l.kernelSize, s = l.stride, p = l.padding
        let hi = inputShape.height, wi = inputShape.width
        let ho = outputShape.height, wo = outputShape.width
        let cin = l.inChannels, cout = l.outChannels
        let x = try array(of: G.Operand.self, inputShape.count)
        defer { x.deallocate() }
        let acc = try array(of: G.Accumulator.self, outputShape.count)
        defer { acc.deallocate() }
        let w = try array(of: G.Operand.self, l.weights.count)
        defer { w.deallocate() }
        // Inputs lie within ±inputBound by the layer's contract; clamping only keeps a broken
        // contract from trapping in the conversion.
        for i in 0..<inputShape.count { x[i] = G.operand(min(max(input[i], -l.inputBound), l.inputBound)) }

        if !l.transposed {
            for (i, v) in l.weights.enumerated() { w[i] = G.operand(Int32(v)) }
            let kdim = cin * k * k
            let n = ho * wo
            if k == 1 && s == 1 && p == 0 {
                G.gemm(m: cout, n: n, k: cin, a: w, lda: cin, b: x, ldb: n, c: acc, ldc: n, threads: threads)
            } else {
                // Row bands bound the column matrix (huge images would need gigabytes at once).
                let bandRows = max(1, min(ho, CPUConv2d.bandBudget / max(1, kdim * wo)))
                let cols = try array(of: G.Operand.self, kdim * bandRows * wo)
                defer { cols.deallocate() }
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
                    G.gemm(m: cout, n: bn, k: kdim, a: w, lda: kdim, b: cols, ldb: bn, c: acc + row0 * wo, ldc: n,
                           threads: threads)
                    row0 += rows
                }
            }
        } else {
            // Wᵀ·X gives every tap's contribution; col2im adds them up (exactly, as above). The
            // weights are stored [cin][cout·k·k]: transposed once here, so the GEMM reads rows.
            let rowsOfA = cout * k * k
            for ci in 0..<cin {
                for r in 0..<rowsOfA { w[r * cin + ci] = G.operand(Int32(l.weights[ci * rowsOfA + r])) }
            }
            let bandRows = max(1, min(hi, CPUConv2d.bandBudget / max(1, rowsOfA * wi)))
            let cols = try array(of: G.Accumulator.self, rowsOfA * bandRows * wi)
            defer { cols.deallocate() }
            acc.update(repeating: .zero, count: outputShape.count)
            var row0 = 0
            while row0 < hi {
                let rows = min(bandRows, hi - row0), bn = rows * wi
                G.gemm(m: rowsOfA, n: bn, k: cin, a: w, lda: cin, b: x + row0 * wi, ldb: hi * wi, c: cols, ldc: bn,
                       threads: threads)
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
            for i in 0..<plane { dst[i] = G.int32(a[i]) &+ b }
            rq.apply(dst, count: plane, channel: co)
        }
    }
}

/// Uninitialised memory for `count` values (an error, not a trap, when refused).
private func array<T>(of _: T.Type, _ count: Int) throws -> UnsafeMutablePointer<T> {
    try CPUMemory.allocate(bytes: max(1, count) * MemoryLayout<T>.stride, backend: "cpu").bindMemory(to: T.self, capacity: max(1, count))
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
