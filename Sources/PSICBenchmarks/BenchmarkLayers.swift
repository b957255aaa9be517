import PSICEngine

/// The codec's layers with random weights (the shapes and kinds of the shipped architecture),
/// so kernels can be benchmarked without a trained model.
struct BenchmarkLayers {
    let analysis: [LayerOp]
    let hyperAnalysis: [LayerOp]
    let hyperSynthesis: [LayerOp]
    let entropyParameters: [LayerOp]
    let synthesis: [LayerOp]
    let levels = 8

    init(N: Int, C: Int, hyper: Int, levelChannels: Int) throws {
        var seed: UInt32 = 7
        func rnd(_ n: Int, _ scale: Float) -> [Float] { Self.random(n, scale, seed: &seed) }
        func conv(_ name: String, _ ci: Int, _ co: Int, k: Int = 5, s: Int = 2, act: Activation = .none) throws -> LayerOp {
            .conv2d(try Conv2dLayer(name: name, inChannels: ci, outChannels: co, kernelSize: k, stride: s,
                                    weights: rnd(co * ci * k * k, 0.1), bias: rnd(co, 0.1), activation: act))
        }
        func deconv(_ name: String, _ ci: Int, _ co: Int) throws -> LayerOp {
            .convTranspose2d(try ConvTranspose2dLayer(name: name, inChannels: ci, outChannels: co, kernelSize: 5, stride: 2,
                                                      weights: rnd(co * ci * 25, 0.1), bias: rnd(co, 0.1)))
        }
        func gdn(_ name: String, _ inverse: Bool) throws -> LayerOp {
            try Self.randomGDN(name, channels: N, inverse: inverse, seed: &seed)
        }
        func int(_ name: String, _ ci: Int, _ co: Int, k: Int, s: Int, transposed: Bool) throws -> LayerOp {
            let rq = IntegerRequantization(multiplier: [Int32](repeating: 20000, count: co), shift: [Int32](repeating: 24, count: co),
                                           activation: .leakyReLU(slopeNumerator: 16), outputMin: -32767, outputMax: 32767)
            // Small weights keep the accumulator bound valid for 16-bit inputs at any fan-in used here.
            let w = (0..<(ci * co * k * k)).map { i in Int16(truncatingIfNeeded: (i &* 2_654_435_761) >> 7) % 3 }
            return .intConv2d(try IntConv2dLayer(name: name, transposed: transposed, inChannels: ci, outChannels: co,
                                                 kernelSize: k, stride: s, weights: w, bias: [Int32](repeating: 0, count: co),
                                                 inputBound: 32767, requantization: rq))
        }
        let leaky = Activation.leakyReLU(slope: 1.0 / 16)
        analysis = [try conv("g_a.0", 3, N), try gdn("g_a.1", false), try conv("g_a.2", N, N), try gdn("g_a.3", false),
                    try conv("g_a.4", N, N), try gdn("g_a.5", false), try conv("g_a.6", N, C)]
        hyperAnalysis = [try conv("h_a.0", C, N, k: 3, s: 1, act: leaky), try conv("h_a.2", N, N, act: leaky), try conv("h_a.4", N, N)]
        hyperSynthesis = [try int("h_s.0", N, N, k: 5, s: 2, transposed: true), try int("h_s.2", N, N, k: 5, s: 2, transposed: true),
                          try int("h_s.4", N, hyper, k: 3, s: 1, transposed: false)]
        let epIn = hyper + (levels - 1) * levelChannels
        entropyParameters = [try int("ep.7.0", epIn, 128, k: 1, s: 1, transposed: false),
                             try int("ep.7.2", 128, 128, k: 1, s: 1, transposed: false),
                             try int("ep.7.4", 128, 2 * levelChannels, k: 1, s: 1, transposed: false)]
        synthesis = [try deconv("g_s.0", C, N), try gdn("g_s.1", true), try deconv("g_s.2", N, N), try gdn("g_s.3", true),
                     try deconv("g_s.4", N, N), try gdn("g_s.5", true), try deconv("g_s.6", N, 3)]
    }

    /// `n` values uniform in ±scale/2 from a linear congruential generator: the same weights on
    /// every machine and run, so benchmarks compare like with like.
    static func random(_ n: Int, _ scale: Float, seed: inout UInt32) -> [Float] {
        (0..<n).map { _ in seed = seed &* 1_664_525 &+ 1_013_904_223; return (Float(seed >> 8) / Float(1 << 24) - 0.5) * scale }
    }

    /// A GDN (or IGDN) layer with random weights: β within 1 ± 0.05 and γ within [0, 0.01], so
    /// the normaliser stays near 1.
    static func randomGDN(_ name: String, channels: Int, inverse: Bool, seed: inout UInt32) throws -> LayerOp {
        let beta = random(channels, 0.1, seed: &seed).map { $0 + 1 }
        let gamma = random(channels * channels, 0.02, seed: &seed).map { abs($0) }
        return .gdn(try GDNLayer(name: name, channels: channels, inverse: inverse, beta: beta, gamma: gamma))
    }
}
