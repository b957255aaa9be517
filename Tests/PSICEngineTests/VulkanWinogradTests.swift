import XCTest
@testable import PSICEngine
@testable import PSICVulkan

/// The Winograd route of 5x5 stride-2 convolutions (WinogradConvolution) against the exact
/// reference, under the error bound of `ReferenceKernels.conv2dWinograd`.
final class VulkanWinogradTests: XCTestCase {
    override func tearDown() {
        WinogradConvolution.setDefaultMethod(.automatic)
        WinogradConvolution.Tiling.setOverride(nil)
    }

    /// Blockings besides the default: tiles and channels that never divide the shapes, two
    /// quads of tiles per invocation, and bands of one tile row (several bands per layer,
    /// the last one partial) so band offsets and the shared scratch are exercised.
    static let tilings: [WinogradConvolution.Tiling?] = [
        nil,
        WinogradConvolution.Tiling(outputChannels: 8, tileQuads: 2, groupX: 16, bandElements: 1),
        WinogradConvolution.Tiling(outputChannels: 4, tileQuads: 1, groupX: 8, bandElements: 20_000),
    ]

    /// The shared Vulkan backend with the route forced on, or a skip where it cannot run.
    func winogradBackend() throws -> VulkanBackend {
        let backend = try SharedVulkan.get()
        guard backend.deviceInfo.subgroupSize == 8, backend.deviceInfo.supportsSubgroupShuffle else {
            throw XCTSkip("the Winograd route needs 8-lane subgroups with shuffles")
        }
        WinogradConvolution.setDefaultMethod(.winograd)
        return backend
    }

    func testWinogradConvShapes() throws {
        let backend = try winogradBackend()
        var rng = TestRandom(seed: 7)
        // (in, out, h, w, padding, activation): odd sizes, partial edge tiles and tile quads,
        // channel counts off the blocks, a 1x1 image, padding other than 2.
        let cases: [(Int, Int, Int, Int, Int, Activation)] = [
            (8, 16, 17, 23, 2, .none), (9, 13, 40, 3, 2, .leakyReLU(slope: 0.2)), (3, 4, 1, 1, 2, .none),
            (16, 40, 33, 29, 2, .relu), (5, 7, 12, 16, 1, .none), (4, 36, 9, 70, 2, .none),
            (8, 12, 20, 64, 2, .relu),  // 4-aligned rows and views: quad input fetches and output stores
        ]
        for tiling in Self.tilings {
            WinogradConvolution.Tiling.setOverride(tiling)
            for (n, c) in cases.enumerated() {
                let (ci, co, h, w, pad, act) = c
                let layer = try Conv2dLayer(name: "wino\(n)", inChannels: ci, outChannels: co, kernelSize: 5, stride: 2,
                                            padding: pad, weights: rng.floats(co * ci * 25), bias: rng.floats(co),
                                            activation: act)
                let extra = n % 2
                let shape = TensorShape(channels: ci + extra, height: h, width: w)
                let x = Tensor(shape: shape, floats: rng.floats(shape.count))
                try checkFloatOp(.conv2d(layer), on: backend, input: x, inView: (extra, ci), outOffset: n % 2, activation: act) {
                    ReferenceKernels.conv2dWinograd(layer, input: $0, shape: $1)
                }
            }
        }
    }

    func testWinogradConvTransposeShapes() throws {
        let backend = try winogradBackend()
        var rng = TestRandom(seed: 11)
        // (in, out, h, w, output padding, activation): odd sizes, outputs of odd size (output
        // padding 0), partial tiles and quads, channel counts off the blocks and off 4 (the
        // product loop's step), a 1x1 input, 4-aligned rows.
        let cases: [(Int, Int, Int, Int, Int, Activation)] = [
            (8, 16, 9, 11, 1, .none), (9, 13, 20, 3, 0, .leakyReLU(slope: 0.2)), (3, 4, 1, 1, 1, .none),
            (16, 40, 17, 15, 1, .relu), (6, 3, 8, 32, 1, .none), (5, 9, 7, 5, 0, .none),
        ]
        for tiling in Self.tilings {
            WinogradConvolution.Tiling.setOverride(tiling)
            for (n, c) in cases.enumerated() {
                let (ci, co, h, w, op, act) = c
                let layer = try ConvTranspose2dLayer(name: "winoT\(n)", inChannels: ci, outChannels: co, kernelSize: 5,
                                                     stride: 2, outputPadding: op, weights: rng.floats(ci * co * 25),
                                                     bias: rng.floats(co), activation: act)
                XCTAssertTrue(WinogradConvolution.runs(layer, on: backend.deviceInfo), "case \(n) should take the Winograd route")
                let extra = n % 2
                let shape = TensorShape(channels: ci + extra, height: h, width: w)
                let x = Tensor(shape: shape, floats: rng.floats(shape.count))
                try checkFloatOp(.convTranspose2d(layer), on: backend, input: x, inView: (extra, ci), outOffset: n % 2,
                                 activation: act) {
                    ReferenceKernels.convTranspose2dWinograd(layer, input: $0, shape: $1)
                }
            }
        }
    }

    /// The scratch-memory transform gives exactly G g G^T summed in the order of the textbook
    /// product, and `pack` puts each transformed kernel where the product kernel reads it.
    func testKernelTransformIsTheMatrixProduct() throws {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> Double {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Double(Int64(bitPattern: state >> 11) % 2001 - 1000) / 997
        }
        let g = WinogradConvolution.g
        for _ in 0..<50 {
            let w = (0..<3).map { _ in (0..<3).map { _ in next() } }
            // ((0 + x0) + x1) + x2, as a left fold
            func dot(_ x: [Double], _ y: [Double]) -> Double {
                var s = 0.0
                for k in 0..<3 { s += x[k] * y[k] }
                return s
            }
            let columns = (0..<3).map { j in (0..<3).map { k in w[k][j] } }
            let gw = (0..<6).map { i in (0..<3).map { j in dot(g[i], columns[j]) } }
            let want = (0..<6).map { i in (0..<6).map { j in dot(gw[i], g[j]) } }
            XCTAssertEqual(WinogradConvolution.transformKernel(w), want)
        }
        let (ci, co, ocb) = (2, 3, 2)
        let weights = (0..<(co * ci * 25)).map { _ in Float(next()) }
        let layer = try Conv2dLayer(name: "pack", inChannels: ci, outChannels: co, kernelSize: 5, stride: 2,
                                    weights: weights, bias: [1, 2, 3])
        let packed = WinogradConvolution.pack(layer, outputChannels: ocb)
        guard case let .floats(u) = packed.storage else { return XCTFail("Winograd parameters are floats") }
        let blocks = 2, zC = 4 * ci
        for o in 0..<co {
            for i in 0..<ci {
                for (a, b) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                    let k = (0..<3).map { y in (0..<3).map { x in
                        2 * y + a < 5 && 2 * x + b < 5 ? Double(weights[((o * ci + i) * 5 + 2 * y + a) * 5 + 2 * x + b]) : 0 } }
                    let t = WinogradConvolution.transformKernel(k)
                    for point in 0..<36 {
                        XCTAssertEqual(u[((point * blocks + o / ocb) * zC + 4 * i + 2 * a + b) * ocb + o % ocb],
                                       Float(t[point / 6][point % 6]))
                    }
                }
            }
        }
        XCTAssertEqual(Array(u[packed.biasOffset...]), [1, 2, 3, 0])
    }

    /// `automatic` takes the route for 5x5/2 layers (and transposed ones) of 8 or more input
    /// channels on CPU devices only; `direct` keeps every layer on the direct kernels.
    func testModeSelection() throws {
        let info = try SharedVulkan.get().deviceInfo
        let wide = try Conv2dLayer(name: "wide", inChannels: 8, outChannels: 8, kernelSize: 5, stride: 2,
                                   weights: [Float](repeating: 0, count: 8 * 8 * 25), bias: [Float](repeating: 0, count: 8))
        let rgb = try Conv2dLayer(name: "rgb", inChannels: 3, outChannels: 8, kernelSize: 5, stride: 2,
                                  weights: [Float](repeating: 0, count: 3 * 8 * 25), bias: [Float](repeating: 0, count: 8))
        let threeByThree = try Conv2dLayer(name: "k3", inChannels: 8, outChannels: 8, kernelSize: 3, stride: 2,
                                           weights: [Float](repeating: 0, count: 8 * 8 * 9), bias: [Float](repeating: 0, count: 8))
        let wideT = try ConvTranspose2dLayer(name: "wideT", inChannels: 8, outChannels: 8, kernelSize: 5, stride: 2,
                                             weights: [Float](repeating: 0, count: 8 * 8 * 25), bias: [Float](repeating: 0, count: 8))
        // Padding 0: output phases read inputs beyond q - 1 ... q + 1.
        let unpadded = try ConvTranspose2dLayer(name: "p0", inChannels: 8, outChannels: 8, kernelSize: 5, stride: 2, padding: 0,
                                                outputPadding: 1, weights: [Float](repeating: 0, count: 8 * 8 * 25),
                                                bias: [Float](repeating: 0, count: 8))
        let capable = info.subgroupSize == 8 && info.supportsSubgroupShuffle
        WinogradConvolution.setDefaultMethod(.automatic)
        XCTAssertEqual(WinogradConvolution.runs(wide, on: info), capable && info.type == .cpu)
        XCTAssertEqual(WinogradConvolution.runs(wideT, on: info), capable && info.type == .cpu)
        XCTAssertFalse(WinogradConvolution.fits(unpadded))
        XCTAssertFalse(WinogradConvolution.runs(rgb, on: info))
        XCTAssertFalse(WinogradConvolution.runs(threeByThree, on: info))
        WinogradConvolution.setDefaultMethod(.winograd)
        XCTAssertEqual(WinogradConvolution.runs(rgb, on: info), capable)
        XCTAssertFalse(WinogradConvolution.runs(threeByThree, on: info))
        WinogradConvolution.setDefaultMethod(.direct)
        XCTAssertFalse(WinogradConvolution.runs(wide, on: info))
    }
}
