import Foundation
import PSICEngine

/// GDN / IGDN, y = x / √(β + γ·x²) (IGDN: times), fused over chunks of pixels: each worker
/// squares a chunk's C × P block of the planar input, mixes it across channels with one SGEMM
/// (planar NCHW already is the C × pixels matrix it needs) and scales the chunk, so the squares
/// and norms stay in cache instead of making three passes over the whole tensor.
enum CPUGDN {
    /// Pixels per chunk: the squares and norms of one chunk (2 · C · P floats, 192 KiB at
    /// C = 96) stay in a Zen 3 core's 512 KiB L2.
    static let chunkPixels = 256

    /// Scratch floats `run` needs for `channels` on `threads` threads.
    static func scratchFloats(channels: Int, threads: Int) -> Int { max(1, threads) * 2 * channels * chunkPixels }

    static func run(_ l: GDNLayer, input: UnsafeMutablePointer<Float>, output: UnsafeMutablePointer<Float>,
                    shape: TensorShape, scratch: CPUScratch, threads: Int) throws {
        let c = l.channels, hw = shape.planeSize
        let chunks = (hw + chunkPixels - 1) / chunkPixels
        let workers = max(1, min(threads, chunks))
        let base = try scratch.floats(scratchFloats(channels: c, threads: workers))
        let inverse = l.inverse
        l.gamma.withUnsafeBufferPointer { gamma in
            l.beta.withUnsafeBufferPointer { beta in
                parallelFor(workers, threads: workers) { worker in
                    let squares = base + worker * 2 * c * chunkPixels
                    let norms = squares + c * chunkPixels
                    for chunk in stride(from: worker, to: chunks, by: workers) {
                        let p0 = chunk * chunkPixels, n = min(chunkPixels, hw - p0)
                        for ch in 0..<c {
                            let x = input + ch * hw + p0, q = squares + ch * n
                            for i in 0..<n { q[i] = x[i] * x[i] }
                        }
                        sgemm(m: c, n: n, k: c, a: gamma.baseAddress!, lda: c, b: squares, ldb: n, c: norms, ldc: n)
                        for ch in 0..<c {
                            let x = input + ch * hw + p0, y = output + ch * hw + p0, nrm = norms + ch * n
                            let b = beta[ch]
                            if inverse {
                                for i in 0..<n { y[i] = x[i] * (b + nrm[i]).squareRoot() }
                            } else {
                                for i in 0..<n { y[i] = x[i] / (b + nrm[i]).squareRoot() }
                            }
                        }
                    }
                }
            }
        }
    }
}
