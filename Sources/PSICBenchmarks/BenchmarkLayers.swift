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
        func rnd(_ n: Int, _ scale: Float) -> [Float] {
            (0..<n).map { _ in seed = seed &* 1_664_525 &+ 1_013_904_223; return (Float(seed >> 8) / Float(1 << 24) - 0.5) * scale }
        }
        func conv(_ name: String, _ ci: Int, _ co: Int, k: Int = 5, s: Int = 2, act: Activation = .none) throws -> LayerOp {
            .conv2d(try Conv2dLayer(name: name, inChannels: ci, outChannels: co, kernelSize: k, stride: s,
                                    weights: rnd(co * ci * k * k, 0.1), bias: rnd(co, 0.1), activation: act))
        }
        func deconv(_ name: String, _ ci: Int, _ co: Int) throws -> LayerOp {
            .convTranspose2d(try ConvTranspose2dLayer(name: name, inChannels: ci, outChannels: co, kernelSize: 5, stride: 2,
                                                      weights: rnd(co * ci * 25, 0.1), bias: rnd(co, 0.1)))
        }
        func gdn(_ name: String, _ inverse: Bool) throws -> LayerOp {
            .gdn(try GDNLayer(name: name, channels: N, inverse: inverse, beta: rnd(N, 0.1).map { $0 + 1 },
                              gamma: rnd(N * N, 0.02).map { abs($0) }))
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
}
