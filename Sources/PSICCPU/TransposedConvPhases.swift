import PSICEngine

/// A strided transposed convolution as one stride-1 convolution per output phase.
///
/// Along one axis, input position `i` reaches output `o` through tap `t` when `o + p = i·s + t`.
/// The output's phase `r = o mod s` fixes which taps reach it (`ConvTranspose2dLayer.phaseTaps`):
/// `t = φ + s·j` with `φ = (r + p) mod s`, and with `o = s·q + r` the input is `i = q + c − j`, `c = (r + p − φ) / s`.
/// Read with the taps reversed (`u = T − 1 − j`), that is a plain correlation over `q` with a
/// `T`-tap kernel and left padding `T − 1 − c`. So each of the `s²` output phases is an ordinary
/// convolution of the whole input with a smaller kernel (for 5×5/2: 3×3, 3×2, 2×3 and 2×2), no
/// multiply wasted on the zeros a strided transposed convolution inserts, and fast convolution
/// kernels apply.
struct TransposedConvPhases {
    /// One output phase: the output pixels at rows `row + s·q`, columns `column + s·q'`.
    struct Phase {
        let row: Int, column: Int
        /// Size of the phase's output grid.
        let rows: Int, columns: Int
        /// Kernel taps of the original layer read by the phase kernel's index `u`, per axis.
        let taps: (y: [Int], x: [Int])
        let padLeft: (y: Int, x: Int)
        let padRight: (y: Int, x: Int)
    }

    private struct Axis {
        let offset: Int, count: Int, taps: [Int], padLeft: Int, padRight: Int
    }

    let kernelSize: Int
    /// The phases that have output pixels.
    let phases: [Phase]

    /// nil when a phase that has output pixels would read no tap or need negative padding
    /// (kernel smaller than the stride, or unusual paddings): run such layers another way.
    init?(kernelSize k: Int, stride s: Int, padding p: Int, inputShape: TensorShape, outputShape: TensorShape) {
        func axes(input: Int, output: Int) -> [Axis]? {
            var out: [Axis] = []
            for r in 0..<s {
                let count = r < output ? (output - r + s - 1) / s : 0
                guard count > 0 else { continue }
                let phi = (r + p) % s
                let ascending = ConvTranspose2dLayer.phaseTaps(r, kernelSize: k, stride: s, padding: p)
                let tapCount = ascending.count
                let c = (r + p - phi) / s
                let padLeft = tapCount - 1 - c
                let padRight = (count - 1) + tapCount - input - padLeft
                guard tapCount > 0, padLeft >= 0, padRight >= 0 else { return nil }
                out.append(Axis(offset: r, count: count, taps: ascending.reversed(),
                                padLeft: padLeft, padRight: padRight))
            }
            return out
        }
        guard let ys = axes(input: inputShape.height, output: outputShape.height),
              let xs = axes(input: inputShape.width, output: outputShape.width) else { return nil }
        kernelSize = k
        phases = ys.flatMap { y in
            xs.map { x in
                Phase(row: y.offset, column: x.offset, rows: y.count, columns: x.count, taps: (y.taps, x.taps),
                      padLeft: (y.padLeft, x.padLeft), padRight: (y.padRight, x.padRight))
            }
        }
    }

    /// The phase kernel `[out][in][u_y][u_x]` from the layer's weights `[in][out][k][k]`.
    func weights(_ w: [Float], phase: Phase, inChannels: Int, outChannels: Int) -> [Float] {
        let k = kernelSize, ty = phase.taps.y.count, tx = phase.taps.x.count
        var out = [Float](repeating: 0, count: outChannels * inChannels * ty * tx)
        for co in 0..<outChannels {
            for ci in 0..<inChannels {
                for (uy, ky) in phase.taps.y.enumerated() {
                    for (ux, kx) in phase.taps.x.enumerated() {
                        out[((co * inChannels + ci) * ty + uy) * tx + ux] = w[((ci * outChannels + co) * k + ky) * k + kx]
                    }
                }
            }
        }
        return out
    }
}
