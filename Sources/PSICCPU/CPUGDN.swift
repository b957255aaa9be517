import Foundation
import PSICEngine

/// GDN / IGDN: the squared input mixed across channels by one SGEMM, then a per-element scale.
enum CPUGDN {
    static func run(_ l: GDNLayer, input: UnsafeMutablePointer<Float>, output: UnsafeMutablePointer<Float>,
                    shape: TensorShape, scratch: CPUScratch, threads: Int) throws {
        let c = l.channels, hw = shape.planeSize
        let squares = try scratch.floats(2 * c * hw)
        let norms = squares + c * hw
        parallelFor(c, threads: threads) { ch in
            let x = input + ch * hw, q = squares + ch * hw
            for i in 0..<hw { q[i] = x[i] * x[i] }
        }
        l.gamma.withUnsafeBufferPointer { g in
            parallelSGEMM(m: c, n: hw, k: c, a: g.baseAddress!, lda: c, b: squares, ldb: hw, c: norms, ldc: hw,
                          threads: threads)
        }
        let inverse = l.inverse
        l.beta.withUnsafeBufferPointer { beta in
            parallelFor(c, threads: threads) { ch in
                let x = input + ch * hw, nrm = norms + ch * hw, y = output + ch * hw
                let b = beta[ch]
                if inverse {
                    for i in 0..<hw { y[i] = x[i] * (b + nrm[i]).squareRoot() }
                } else {
                    for i in 0..<hw { y[i] = x[i] / (b + nrm[i]).squareRoot() }
                }
            }
        }
    }
}
