import PSICEngine

/// Integer convolution and transposed convolution with exact Int32 accumulation and the
/// engine's requantisation. Wrapping arithmetic is safe: the layer's initialiser proved that no
/// partial sum can leave Int32 for inputs within its bound, and inputs come from clamped layers.
enum CPUIntConv {
    static func run(_ l: IntConv2dLayer, input: UnsafeMutablePointer<Int32>, inputShape: TensorShape,
                    output: UnsafeMutablePointer<Int32>, outputShape: TensorShape, threads: Int) {
        let k = l.kernelSize, s = l.stride, p = l.padding
        let hi = inputShape.height, wi = inputShape.width
        let ho = outputShape.height, wo = outputShape.width
        let cin = l.inChannels, cout = l.outChannels
        let rq = l.requantization
        l.weights.withUnsafeBufferPointer { w in
            parallelFor(cout, threads: threads) { co in
                let acc = UnsafeMutablePointer<Int32>.allocate(capacity: ho * wo)
                defer { acc.deallocate() }
                acc.initialize(repeating: l.bias[co], count: ho * wo)
                for ci in 0..<cin {
                    let src = input + ci * hi * wi
                    for ky in 0..<k {
                        for kx in 0..<k {
                            let wv = Int32(l.transposed ? w[((ci * cout + co) * k + ky) * k + kx]
                                                        : w[((co * cin + ci) * k + ky) * k + kx])
                            if wv == 0 { continue }
                            if l.transposed {
                                let lo = max(0, (p - kx + s - 1) / s)
                                let hiX = min(wi, floorDivide(wo - 1 + p - kx, s) + 1)
                                guard lo < hiX else { continue }
                                for iy in 0..<hi {
                                    let oy = iy * s - p + ky
                                    guard oy >= 0, oy < ho else { continue }
                                    let drow = acc + oy * wo - p + kx
                                    let srow = src + iy * wi
                                    for ix in lo..<hiX { drow[ix * s] &+= wv &* srow[ix] }
                                }
                            } else {
                                let xr = validOutputRange(outputSize: wo, inputSize: wi, stride: s, padding: p, tap: kx)
                                guard !xr.isEmpty else { continue }
                                for oy in 0..<ho {
                                    let iy = oy * s - p + ky
                                    guard iy >= 0, iy < hi else { continue }
                                    let drow = acc + oy * wo
                                    let srow = src + iy * wi - p + kx
                                    if s == 1 {
                                        for ox in xr { drow[ox] &+= wv &* srow[ox] }
                                    } else {
                                        for ox in xr { drow[ox] &+= wv &* srow[ox * s] }
                                    }
                                }
                            }
                        }
                    }
                }
                let dst = output + co * ho * wo
                for i in 0..<(ho * wo) { dst[i] = rq.apply(acc[i], channel: co) }
            }
        }
    }
}
