@testable import PSICEngine

/// Naive reference implementations of every engine op: plain loops written straight from
/// the layer documentation, in Double for the float ops so that they serve as the "exact"
/// result the backends' fp32 results are compared against. Each float op also returns, per
/// output, the sum of the absolute values of the terms it added (`magnitude`), which is what
/// floating-point error bounds scale with.
enum ReferenceKernels {
    struct FloatResult {
        var values: [Double]
        var magnitude: [Double]
        /// Number of terms summed per output (bias included).
        var terms: Int
    }

    static func activate(_ v: Double, _ a: Activation) -> Double {
        switch a {
        case .none: return v
        case .relu: return max(v, 0)
        case let .leakyReLU(slope): return v < 0 ? Double(slope) * v : v
        }
    }

    static func conv2d(_ l: Conv2dLayer, input x: [Float], shape: TensorShape) -> FloatResult {
        let out = l.outputShape(for: shape)!
        let k = l.kernelSize
        var y = [Double](repeating: 0, count: out.count)
        var mag = [Double](repeating: 0, count: out.count)
        for co in 0..<out.channels {
            for oy in 0..<out.height {
                for ox in 0..<out.width {
                    var acc = Double(l.bias[co])
                    var m = abs(acc)
                    for ci in 0..<l.inChannels {
                        for ky in 0..<k {
                            let iy = oy * l.stride - l.padding + ky
                            guard iy >= 0, iy < shape.height else { continue }
                            for kx in 0..<k {
                                let ix = ox * l.stride - l.padding + kx
                                guard ix >= 0, ix < shape.width else { continue }
                                let t = Double(l.weights[((co * l.inChannels + ci) * k + ky) * k + kx])
                                    * Double(x[(ci * shape.height + iy) * shape.width + ix])
                                acc += t
                                m += abs(t)
                            }
                        }
                    }
                    let i = (co * out.height + oy) * out.width + ox
                    y[i] = activate(acc, l.activation)
                    mag[i] = m
                }
            }
        }
        return FloatResult(values: y, magnitude: mag, terms: l.inChannels * k * k + 1)
    }

    /// Scatter formulation, as PyTorch defines it: input (iy, ix) adds to output
    /// (iy*stride - padding + ky, ix*stride - padding + kx).
    static func convTranspose2d(_ l: ConvTranspose2dLayer, input x: [Float], shape: TensorShape) -> FloatResult {
        let out = l.outputShape(for: shape)!
        let k = l.kernelSize
        var y = [Double](repeating: 0, count: out.count)
        var mag = [Double](repeating: 0, count: out.count)
        for co in 0..<out.channels {
            for i in 0..<out.planeSize {
                y[co * out.planeSize + i] = Double(l.bias[co])
                mag[co * out.planeSize + i] = abs(Double(l.bias[co]))
            }
        }
        for ci in 0..<l.inChannels {
            for iy in 0..<shape.height {
                for ix in 0..<shape.width {
                    let v = Double(x[(ci * shape.height + iy) * shape.width + ix])
                    for co in 0..<l.outChannels {
                        for ky in 0..<k {
                            let oy = iy * l.stride - l.padding + ky
                            guard oy >= 0, oy < out.height else { continue }
                            for kx in 0..<k {
                                let ox = ix * l.stride - l.padding + kx
                                guard ox >= 0, ox < out.width else { continue }
                                let t = Double(l.weights[((ci * l.outChannels + co) * k + ky) * k + kx]) * v
                                let o = (co * out.height + oy) * out.width + ox
                                y[o] += t
                                mag[o] += abs(t)
                            }
                        }
                    }
                }
            }
        }
        for i in y.indices { y[i] = activate(y[i], l.activation) }
        return FloatResult(values: y, magnitude: mag, terms: l.inChannels * k * k + 1)
    }

    /// `magnitude` here is |y| itself: every term of the normalisation sum is non-negative
    /// (gamma >= 0), so the result's relative error is what is bounded.
    static func gdn(_ l: GDNLayer, input x: [Float], shape: TensorShape) -> FloatResult {
        let c = l.channels
        let plane = shape.planeSize
        var y = [Double](repeating: 0, count: shape.count)
        for p in 0..<plane {
            for i in 0..<c {
                var norm = Double(l.beta[i])
                for j in 0..<c {
                    let v = Double(x[j * plane + p])
                    norm += Double(l.gamma[i * c + j]) * v * v
                }
                let v = Double(x[i * plane + p])
                y[i * plane + p] = l.inverse ? v * norm.squareRoot() : v / norm.squareRoot()
            }
        }
        return FloatResult(values: y, magnitude: y.map(abs), terms: c + 1)
    }

    /// Integer conv / transposed conv: exact Int64 sums (the layer proves Int32 suffices),
    /// then the reference requantisation.
    static func intConv2d(_ l: IntConv2dLayer, input x: [Int32], shape: TensorShape) -> [Int32] {
        let out = l.outputShape(for: shape)!
        let k = l.kernelSize
        var acc = [Int64](repeating: 0, count: out.count)
        for co in 0..<out.channels {
            for i in 0..<out.planeSize { acc[co * out.planeSize + i] = Int64(l.bias[co]) }
        }
        if l.transposed {
            for ci in 0..<l.inChannels {
                for iy in 0..<shape.height {
                    for ix in 0..<shape.width {
                        let v = Int64(x[(ci * shape.height + iy) * shape.width + ix])
                        for co in 0..<l.outChannels {
                            for ky in 0..<k {
                                let oy = iy * l.stride - l.padding + ky
                                guard oy >= 0, oy < out.height else { continue }
                                for kx in 0..<k {
                                    let ox = ix * l.stride - l.padding + kx
                                    guard ox >= 0, ox < out.width else { continue }
                                    acc[(co * out.height + oy) * out.width + ox] +=
                                        Int64(l.weights[((ci * l.outChannels + co) * k + ky) * k + kx]) * v
                                }
                            }
                        }
                    }
                }
            }
        } else {
            for co in 0..<out.channels {
                for oy in 0..<out.height {
                    for ox in 0..<out.width {
                        var a: Int64 = 0
                        for ci in 0..<l.inChannels {
                            for ky in 0..<k {
                                let iy = oy * l.stride - l.padding + ky
                                guard iy >= 0, iy < shape.height else { continue }
                                for kx in 0..<k {
                                    let ix = ox * l.stride - l.padding + kx
                                    guard ix >= 0, ix < shape.width else { continue }
                                    a += Int64(l.weights[((co * l.inChannels + ci) * k + ky) * k + kx])
                                        * Int64(x[(ci * shape.height + iy) * shape.width + ix])
                                }
                            }
                        }
                        acc[(co * out.height + oy) * out.width + ox] += a
                    }
                }
            }
        }
        return acc.enumerated().map { i, a in
            precondition(a >= Int64(Int32.min) && a <= Int64(Int32.max), "accumulator overflow in the test data")
            return l.requantization.apply(Int32(a), channel: i / out.planeSize)
        }
    }

    /// Runs a whole graph with the kernels above (float ops rounded to Float between nodes,
    /// as a backend stores them). Returns every tensor's contents; unwritten channels are 0.
    static func run(_ graph: Graph, inputs: [TensorID: Tensor]) -> [TensorID: Tensor] {
        var tensors: [Tensor] = graph.tensors.enumerated().map { i, decl in
            if let t = inputs[TensorID(index: i)] { return t }
            switch decl.scalarType {
            case .float32: return Tensor(shape: decl.shape, floats: [Float](repeating: 0, count: decl.shape.count))
            case .int32: return Tensor(shape: decl.shape, ints: [Int32](repeating: 0, count: decl.shape.count))
            }
        }
        for node in graph.nodes {
            let src = tensors[node.input.tensor.index]
            let plane = node.inputShape.planeSize
            let lo = node.input.channelOffset * plane, hi = lo + node.input.channels * plane
            let outPlane = node.outputShape.planeSize
            let dstLo = node.output.channelOffset * outPlane
            var dst = tensors[node.output.tensor.index]
            switch node.op {
            case .intConv2d(let l):
                let y = intConv2d(l, input: Array(src.ints![lo..<hi]), shape: node.inputShape)
                var all = dst.ints!
                all.replaceSubrange(dstLo..<dstLo + y.count, with: y)
                dst = Tensor(shape: dst.shape, ints: all)
            default:
                let x = Array(src.floats![lo..<hi])
                let r: FloatResult
                switch node.op {
                case .conv2d(let l): r = conv2d(l, input: x, shape: node.inputShape)
                case .convTranspose2d(let l): r = convTranspose2d(l, input: x, shape: node.inputShape)
                case .gdn(let l): r = gdn(l, input: x, shape: node.inputShape)
                case .intConv2d: fatalError("unreachable")
                }
                var all = dst.floats!
                all.replaceSubrange(dstLo..<dstLo + r.values.count, with: r.values.map { Float($0) })
                dst = Tensor(shape: dst.shape, floats: all)
            }
            tensors[node.output.tensor.index] = dst
        }
        return Dictionary(uniqueKeysWithValues: tensors.enumerated().map { (TensorID(index: $0), $1) })
    }
}

/// Deterministic pseudo-random numbers for test data (SplitMix64).
struct TestRandom {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [lo, hi).
    mutating func float(_ lo: Float, _ hi: Float) -> Float {
        lo + (hi - lo) * Float(next() >> 40) / Float(1 << 24)
    }
    mutating func floats(_ n: Int, _ lo: Float = -1, _ hi: Float = 1) -> [Float] {
        (0..<n).map { _ in float(lo, hi) }
    }
    /// Uniform in lo...hi.
    mutating func int(_ lo: Int, _ hi: Int) -> Int {
        lo + Int(next() % UInt64(hi - lo + 1))
    }
}
