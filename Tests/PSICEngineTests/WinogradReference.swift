@testable import PSICEngine
@testable import PSICVulkan

extension ReferenceKernels {
    /// `conv2d` with the error magnitude of the Winograd route (PSICVulkan's
    /// WinogradConvolution, F(4x4, 3x3) over the four input phases of a 5x5 stride-2 layer).
    ///
    /// Each stage is a linear map evaluated in fp32, so to first order the error of an output
    /// is at most n u times |A^T| (sum over channels of |U| . |B^T| |d| |B|) |A| (plus |bias|):
    /// the same sums as the result with every coefficient and term replaced by its absolute
    /// value. n counts the roundings along the way: the 4 inC-term products, two passes of the
    /// input transform (at most 4 terms each), the rounding of U to fp32, two passes of the
    /// output transform (at most 6 terms each), bias and activation; `terms` is 4 inC + 24.
    /// The transforms' coefficients (up to 8 and 1/24) make this bound larger than the direct
    /// sum's, which is the accuracy the route trades for 2.8x fewer multiplications.
    static func conv2dWinograd(_ l: Conv2dLayer, input x: [Float], shape: TensorShape) -> FloatResult {
        precondition(l.kernelSize == 5 && l.stride == 2)
        var r = conv2d(l, input: x, shape: shape)
        let out = l.outputShape(for: shape)!
        let bt = WinogradConvolution.bt.map { $0.map(abs) }, at = WinogradConvolution.at.map { $0.map(abs) }
        func input(_ ci: Int, _ iy: Int, _ ix: Int) -> Double {
            guard iy >= 0, iy < shape.height, ix >= 0, ix < shape.width else { return 0 }
            return abs(Double(x[(ci * shape.height + iy) * shape.width + ix]))
        }
        // |U| per output channel and input channel-phase.
        var u: [[[[Double]]]] = []
        for co in 0..<l.outChannels {
            var row: [[[Double]]] = []
            for ci in 0..<l.inChannels {
                for a in 0..<2 {
                    for b in 0..<2 {
                        var g = [[Double]](repeating: [0, 0, 0], count: 3)
                        for y in 0..<3 {
                            for xx in 0..<3 where 2 * y + a < 5 && 2 * xx + b < 5 {
                                g[y][xx] = Double(l.weights[((co * l.inChannels + ci) * 5 + 2 * y + a) * 5 + 2 * xx + b])
                            }
                        }
                        row.append(WinogradConvolution.transformKernel(g).map { $0.map(abs) })
                    }
                }
            }
            u.append(row)
        }
        for ty in 0..<(out.height + 3) / 4 {
            for tx in 0..<(out.width + 3) / 4 {
                // |B^T| |d| |B| per channel-phase of this tile.
                var v: [[[Double]]] = []
                for ci in 0..<l.inChannels {
                    for a in 0..<2 {
                        for b in 0..<2 {
                            let d = (0..<6).map { rr in
                                (0..<6).map { c in input(ci, 8 * ty + 2 * rr + a - l.padding, 8 * tx + 2 * c + b - l.padding) }
                            }
                            v.append(multiply(multiply(bt, d), transpose(bt)))
                        }
                    }
                }
                for co in 0..<l.outChannels {
                    let m = tileMagnitude(u: u[co], v: v, at: at)
                    for i in 0..<4 where 4 * ty + i < out.height {
                        for j in 0..<4 where 4 * tx + j < out.width {
                            r.magnitude[(co * out.height + 4 * ty + i) * out.width + 4 * tx + j] = m[i][j] + abs(Double(l.bias[co]))
                        }
                    }
                }
            }
        }
        r.terms = 4 * l.inChannels + 24
        return r
    }

    /// `convTranspose2d` with the error magnitude of the Winograd route for transposed 5x5
    /// stride-2 layers: per output phase a 3x3 correlation of the input (padding 1) through
    /// F(4x4, 3x3), bounded as in `conv2dWinograd` (`terms`: inC + 24).
    static func convTranspose2dWinograd(_ l: ConvTranspose2dLayer, input x: [Float], shape: TensorShape) -> FloatResult {
        var r = convTranspose2d(l, input: x, shape: shape)
        let out = l.outputShape(for: shape)!
        let bt = WinogradConvolution.bt.map { $0.map(abs) }, at = WinogradConvolution.at.map { $0.map(abs) }
        let kernels = (0..<2).map { WinogradConvolution.phaseKernel(l, phase: $0)! }
        func input(_ ci: Int, _ iy: Int, _ ix: Int) -> Double {
            guard iy >= 0, iy < shape.height, ix >= 0, ix < shape.width else { return 0 }
            return abs(Double(x[(ci * shape.height + iy) * shape.width + ix]))
        }
        // |U| per product channel z = 4 co + 2 ry + rx and input channel.
        var u: [[[[Double]]]] = []
        for co in 0..<l.outChannels {
            for ry in 0..<2 {
                for rx in 0..<2 {
                    u.append((0..<l.inChannels).map { ci in
                        let g = (0..<3).map { y in
                            (0..<3).map { xx -> Double in
                                guard let ky = kernels[ry][y], let kx = kernels[rx][xx] else { return 0 }
                                return Double(l.weights[((ci * l.outChannels + co) * 5 + ky) * 5 + kx])
                            }
                        }
                        return WinogradConvolution.transformKernel(g).map { $0.map(abs) }
                    })
                }
            }
        }
        let gridH = (out.height + 1) / 2, gridW = (out.width + 1) / 2
        for ty in 0..<(gridH + 3) / 4 {
            for tx in 0..<(gridW + 3) / 4 {
                let v = (0..<l.inChannels).map { ci in
                    let d = (0..<6).map { rr in (0..<6).map { c in input(ci, 4 * ty - 1 + rr, 4 * tx - 1 + c) } }
                    return multiply(multiply(bt, d), transpose(bt))
                }
                for z in u.indices {
                    let m = tileMagnitude(u: u[z], v: v, at: at)
                    let co = z / 4, ry = (z / 2) % 2, rx = z % 2
                    for i in 0..<4 {
                        let oy = 2 * (4 * ty + i) + ry
                        guard oy < out.height else { continue }
                        for j in 0..<4 {
                            let ox = 2 * (4 * tx + j) + rx
                            guard ox < out.width else { continue }
                            r.magnitude[(co * out.height + oy) * out.width + ox] = m[i][j] + abs(Double(l.bias[co]))
                        }
                    }
                }
            }
        }
        r.terms = l.inChannels + 24
        return r
    }

    /// |A^T| (sum over channels of |U| . |B^T| |d| |B|) |A| of one output tile (4 x 4), from
    /// the channels' |U| and |B^T| |d| |B| (6 x 6 each) and |A^T|.
    private static func tileMagnitude(u: [[[Double]]], v: [[[Double]]], at: [[Double]]) -> [[Double]] {
        var s = [[Double]](repeating: [Double](repeating: 0, count: 6), count: 6)
        for c in v.indices {
            for p in 0..<6 { for q in 0..<6 { s[p][q] += u[c][p][q] * v[c][p][q] } }
        }
        return multiply(multiply(at, s), transpose(at))
    }

    private static func multiply(_ a: [[Double]], _ b: [[Double]]) -> [[Double]] {
        a.map { row in (0..<b[0].count).map { j in row.indices.reduce(0.0) { $0 + row[$1] * b[$1][j] } } }
    }

    private static func transpose(_ a: [[Double]]) -> [[Double]] {
        (0..<a[0].count).map { j in a.map { $0[j] } }
    }
}
