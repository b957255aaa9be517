import Foundation
import PSICEngine

/// How a Vulkan backend runs 5x5 stride-2 float convolutions (the analysis transform's).
public enum VulkanConvolutionMethod: String, CaseIterable, Sendable {
    /// Winograd F(4x4, 3x3) on CPU devices (lavapipe), where it measured faster for layers of
    /// 8 or more input channels; the direct kernels elsewhere.
    case automatic = "auto"
    /// Winograd wherever the device has the 8-lane subgroups it needs.
    case winograd
    /// Always the direct kernels (conv2d / conv2d_subgroup).
    case direct
}

/// 5 x 5 stride-2 convolutions, plain and transposed, as Winograd F(4x4, 3x3) on CPU Vulkan
/// devices (Shaders/winograd.glsl and conv2d_winograd_{input,gemm,output}.comp).
///
/// Why: on lavapipe the multiply-adds of the direct kernel (conv2d_subgroup) are the limit,
/// at ~30 GFLOP/s with fetches and ~54 without any (docs/design.md), so the only way to a
/// faster 5 x 5/2 layer there is fewer multiplications. Split into its four input phases
/// (x[2i + a][2j + b]) the layer is a 3 x 3 stride-1 convolution over 4 x the input channels,
/// and F(4x4, 3x3) computes each 4 x 4 output tile of that with 36 multiplies per channel
/// where the direct 5 x 5/2 form needs 16 x 25 = 400 per input channel: 144 / 400, 2.8x fewer.
/// A transposed 5 x 5/2 layer (padding 2) is one 3 x 3 correlation of its input to 4 x the
/// output channels, one per output phase, interleaved into the output (`Geometry`).
///
/// A layer runs in bands of tile rows, each band three dispatches: the input transform writes
/// V (36 x scratch channels x tiles) to scratch slot 0, a matrix product per transform point
/// writes M (36 x product channels x tiles) to slot 1, and the output transform adds bias and
/// activation. Bands
/// bound the scratch (and keep it near the caches) whatever the image size.
enum WinogradConvolution {
    /// Register blocking of the product kernel and the band size.
    struct Tiling: Hashable, Sendable {
        /// Output channels per invocation (a multiple of 4).
        var outputChannels = 32
        /// Quads of consecutive tiles per invocation.
        var tileQuads = 1
        /// Invocations per workgroup (a multiple of the 8-lane subgroup).
        var groupX = 8
        /// Scratch elements a band's input transform may fill (slot 0).
        var bandElements = 4 << 20
        /// Channels each invocation of the input and output transforms handles: on lavapipe
        /// every run of a subgroup costs microseconds, more than one channel's transform.
        var transformChannels = 8

        /// `PSIC_VULKAN_WINOGRAD_TILE=ocb,tq,lx[,band[,cpi]]` overrides the defaults, for tuning.
        static func forLayer(outChannels: Int) -> Tiling {
            overrideLock.lock()
            defer { overrideLock.unlock() }
            if let o = overrideValue { return o }
            return Tiling(outputChannels: min(32, max(4, nextPowerOfTwo(outChannels))))
        }

        /// Replaces the environment's override (tests run small bands and other blockings).
        static func setOverride(_ t: Tiling?) {
            overrideLock.lock()
            overrideValue = t
            overrideLock.unlock()
        }

        private static let overrideLock = NSLock()
        nonisolated(unsafe) private static var overrideValue: Tiling? = {
            guard let s = ProcessInfo.processInfo.environment["PSIC_VULKAN_WINOGRAD_TILE"] else { return nil }
            let v = s.split(separator: ",").compactMap { Int($0) }
            guard (3...5).contains(v.count), v.allSatisfy({ $0 > 0 }), v[0] % 4 == 0, v[2] % 8 == 0 else { return nil }
            return Tiling(outputChannels: v[0], tileQuads: v[1], groupX: v[2], bandElements: v.count >= 4 ? v[3] : 4 << 20,
                          transformChannels: v.count == 5 ? v[4] : 8)
        }()
    }

    /// The layers the route can compute: 5 x 5, stride 2 (any padding).
    static func fits(_ l: Conv2dLayer) -> Bool { l.kernelSize == 5 && l.stride == 2 }

    /// Transposed 5 x 5 stride-2 layers whose every output phase reads the input pixels
    /// q - 1 ... q + 1 only (the codec's, padding 2): then the layer is a 3 x 3 stride-1
    /// correlation with padding 1 to 4 x the output channels, one per output phase, whose
    /// results interleave into the output (depth to space).
    static func fits(_ l: ConvTranspose2dLayer) -> Bool {
        guard l.kernelSize == 5, l.stride == 2 else { return false }
        return (0..<2).allSatisfy { r in phaseKernel(l, phase: r) != nil }
    }

    /// Tap of the layer's kernel (or nil: none) at position u = 0, 1, 2 of the 3-tap
    /// correlation computing output phase r along one axis, which reads input q - 1 + u;
    /// nil when the phase reads inputs outside q - 1 ... q + 1.
    static func phaseKernel(_ l: ConvTranspose2dLayer, phase r: Int) -> [Int?]? {
        // Output 2 q + r reads input q + c - j through tap taps[j] (ConvTranspose2dLayer.phaseTaps).
        let taps = l.phaseTaps(r)
        let c = (r + l.padding) / l.stride
        guard !taps.isEmpty, c <= 1, c - (taps.count - 1) >= -1 else { return nil }
        return (0..<3).map { u in
            let j = c + 1 - u
            return j >= 0 && j < taps.count ? taps[j] : nil
        }
    }

    /// Whether `l` runs as a Winograd convolution on a device like `info`. Needs 8-lane
    /// subgroups with shuffles (the product kernel broadcasts weights as conv2d_subgroup
    /// does). `automatic` takes it on CPU devices for layers of at least 8 input channels; the
    /// 3-channel first layer is left to the direct kernel, where the transforms would cost
    /// more than the 12-deep products save.
    static func runs(_ l: Conv2dLayer, on info: VulkanDeviceInfo, method: VulkanConvolutionMethod? = nil) -> Bool {
        fits(l) && chosen(inChannels: l.inChannels, on: info, method: method)
    }

    /// As for convolutions: transposed layers of 8 or more input channels on CPU devices.
    static func runs(_ l: ConvTranspose2dLayer, on info: VulkanDeviceInfo, method: VulkanConvolutionMethod? = nil) -> Bool {
        fits(l) && chosen(inChannels: l.inChannels, on: info, method: method)
    }

    private static func chosen(inChannels: Int, on info: VulkanDeviceInfo, method: VulkanConvolutionMethod?) -> Bool {
        guard info.subgroupSize == 8, info.supportsSubgroupShuffle else { return false }
        switch method ?? defaultMethod {
        case .direct: return false
        case .winograd: return true
        case .automatic: return info.type == .cpu && inChannels >= 8
        }
    }

    /// The weights transformed to U = G g G^T per input phase, `[point][block][c][o]` with
    /// c = 4 ci + 2 a + b and g[u][v] = w[2u + a][2v + b] (zero past the 5 x 5 kernel), in
    /// double precision and rounded once; then the bias. Output channels past outC are zero.
    static func pack(_ l: Conv2dLayer, outputChannels ocb: Int) -> PackedParameters {
        let k = l.kernelSize, inC = l.inChannels, outC = l.outChannels, zC = 4 * inC
        let blocks = ceilDiv(outC, ocb)
        let u = KernelTransformer.transformed(count: 36 * blocks * zC * ocb) { t in
            for co in 0..<outC {
                for ci in 0..<inC {
                    for a in 0..<2 {
                        for b in 0..<2 {
                            for y in 0..<3 {
                                for x in 0..<3 {
                                    t.kernel[3 * y + x] = 2 * y + a < k && 2 * x + b < k
                                        ? Double(l.weights[((co * inC + ci) * k + 2 * y + a) * k + 2 * x + b]) : 0
                                }
                            }
                            let c = 4 * ci + 2 * a + b
                            t.transform { point in ((point * blocks + co / ocb) * zC + c) * ocb + co % ocb }
                        }
                    }
                }
            }
        }
        let bias = ParameterPacking.padded(l.bias, to: blocks * ocb)
        return PackedParameters(storage: .floats(u + bias), biasOffset: u.count)
    }

    /// A transposed layer's weights as the products read them: per output phase (ry, rx) the
    /// 3 x 3 kernel of `phaseKernel`, transformed, `[point][block][ci][o]` with product channel
    /// z = 4 co + 2 ry + rx; then the bias of each product channel (its output channel's).
    static func pack(_ l: ConvTranspose2dLayer, outputChannels ocb: Int) -> PackedParameters {
        let k = l.kernelSize, inC = l.inChannels, outC = l.outChannels, zC = 4 * outC
        let blocks = ceilDiv(zC, ocb)
        let kernels = (0..<2).map { phaseKernel(l, phase: $0)! }
        var bias = [Float](repeating: 0, count: blocks * ocb)
        let u = KernelTransformer.transformed(count: 36 * blocks * inC * ocb) { t in
            for co in 0..<outC {
                for ry in 0..<2 {
                    for rx in 0..<2 {
                        let z = 4 * co + 2 * ry + rx
                        bias[z] = l.bias[co]
                        for ci in 0..<inC {
                            for y in 0..<3 {
                                for x in 0..<3 {
                                    if let ky = kernels[ry][y], let kx = kernels[rx][x] {
                                        t.kernel[3 * y + x] = Double(l.weights[((ci * outC + co) * k + ky) * k + kx])
                                    } else {
                                        t.kernel[3 * y + x] = 0
                                    }
                                }
                            }
                            t.transform { point in ((point * blocks + z / ocb) * inC + ci) * ocb + z % ocb }
                        }
                    }
                }
            }
        }
        return PackedParameters(storage: .floats(u + bias), biasOffset: u.count)
    }

    /// G of F(4x4, 3x3) (points 0, 1, -1, 2, -2 and infinity).
    static let g: [[Double]] = [
        [1.0 / 4, 0, 0], [-1.0 / 6, -1.0 / 6, -1.0 / 6], [-1.0 / 6, 1.0 / 6, -1.0 / 6],
        [1.0 / 24, 1.0 / 12, 1.0 / 6], [1.0 / 24, -1.0 / 12, 1.0 / 6], [0, 0, 1],
    ]
    /// B^T and A^T of F(4x4, 3x3), as Shaders/winograd.glsl applies them.
    static let bt: [[Double]] = [
        [4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
        [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1],
    ]
    static let at: [[Double]] = [
        [1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1],
    ]

    /// G g G^T (6 x 6) of a 3 x 3 kernel.
    static func transformKernel(_ w: [[Double]]) -> [[Double]] {
        var result: [[Double]] = []
        _ = KernelTransformer.transformed(count: 0) { t in
            for y in 0..<3 {
                for x in 0..<3 { t.kernel[3 * y + x] = w[y][x] }
            }
            t.transform()
            result = (0..<6).map { i in (0..<6).map { j in t.result[6 * i + j] } }
        }
        return result
    }

    /// Computes G g G^T in scratch memory and stores each result's 36 points into the packed
    /// weights. Packing a layer transforms one 3 x 3 kernel per (input, output) channel pair and
    /// phase, ~10^5 for the shipped model; with nested arrays per kernel a debug build spent most
    /// of a Vulkan test's 30 s allocating. The sums run in the order the nested-array version used,
    /// so the packed floats are the same.
    struct KernelTransformer {
        /// The 3 x 3 kernel to transform next, row-major (9 values).
        let kernel: UnsafeMutablePointer<Double>
        /// G g G^T, row-major (36 values), after `transform()`.
        let result: UnsafeMutablePointer<Double>
        private let gw: UnsafeMutablePointer<Double>
        private let gm: UnsafeMutablePointer<Double>
        private let out: UnsafeMutableBufferPointer<Float>

        /// `count` zero-initialised floats, filled by `body` through `transform(at:)`.
        static func transformed(count: Int, _ body: (KernelTransformer) -> Void) -> [Float] {
            var packed = [Float](repeating: 0, count: count)
            packed.withUnsafeMutableBufferPointer { out in
                withUnsafeTemporaryAllocation(of: Double.self, capacity: 9 + 36 + 18 + 18) { buf in
                    let base = buf.baseAddress!
                    let t = KernelTransformer(kernel: base, result: base + 9, gw: base + 45, gm: base + 63, out: out)
                    for i in 0..<6 {
                        for j in 0..<3 { t.gm[3 * i + j] = WinogradConvolution.g[i][j] }
                    }
                    body(t)
                }
            }
            return packed
        }

        func transform() {
            for i in 0..<6 {
                for j in 0..<3 {
                    gw[3 * i + j] = 0.0 + gm[3 * i] * kernel[j] + gm[3 * i + 1] * kernel[3 + j] + gm[3 * i + 2] * kernel[6 + j]
                }
            }
            for i in 0..<6 {
                for j in 0..<6 {
                    result[6 * i + j] = 0.0 + gw[3 * i] * gm[3 * j] + gw[3 * i + 1] * gm[3 * j + 1] + gw[3 * i + 2] * gm[3 * j + 2]
                }
            }
        }

        /// Transforms `kernel` and stores point p (row-major in the 6 x 6 result), rounded to
        /// Float, at `index(p)` of the packed weights.
        func transform(at index: (Int) -> Int) {
            transform()
            for point in 0..<36 { out[index(point)] = Float(result[point]) }
        }
    }

    /// What the three kernels compute for one layer.
    struct Geometry {
        /// The input transform reads the four input phases (5x5/2 convolutions) or the input
        /// itself (transposed convolutions).
        let inputPhases: Bool
        /// The convolution's padding (input-phase layers; the others read one pixel of padding).
        let padding: Int
        /// Channels of the input transform's output (the products' depth).
        let scratchChannels: Int
        /// Channels of the products: the output channels, or 4 per output channel (one per
        /// output phase) under `depthToSpace`.
        let productChannels: Int
        let depthToSpace: Bool
        /// The grid the 4x4 tiles cover: the output, or one output phase.
        let gridHeight: Int
        let gridWidth: Int

        init(_ l: Conv2dLayer, output: TensorShape) {
            inputPhases = true
            padding = l.padding
            scratchChannels = 4 * l.inChannels
            productChannels = l.outChannels
            depthToSpace = false
            gridHeight = output.height
            gridWidth = output.width
        }

        init(_ l: ConvTranspose2dLayer, output: TensorShape) {
            inputPhases = false
            padding = 1
            scratchChannels = l.inChannels
            productChannels = 4 * l.outChannels
            depthToSpace = true
            gridHeight = ceilDiv(output.height, 2)
            gridWidth = ceilDiv(output.width, 2)
        }
    }

    /// The bands of a layer whose tiles cover `gridHeight` x `gridWidth`: `rows` tile rows
    /// each (the last may have fewer).
    struct Bands {
        /// Tiles per row, rounded up to a multiple of 4.
        let tilesX: Int
        let tilesY: Int
        let rows: Int
        /// Elements per (point, channel) row of the scratch: a band's tiles rounded up to
        /// whole product workgroups, so the product kernel never reads past its row.
        let stride: Int

        init(gridHeight: Int, gridWidth: Int, scratchChannels: Int, tiling: Tiling) {
            // Whole quads of tiles per row: the kernels take 4 tiles of one row at a time.
            tilesX = ceilDiv(ceilDiv(gridWidth, 4), 4) * 4
            tilesY = ceilDiv(gridHeight, 4)
            let perRow = 36 * scratchChannels * tilesX
            rows = max(1, min(tilesY, tiling.bandElements / perRow))
            let quantum = 4 * tiling.tileQuads * tiling.groupX
            stride = ceilDiv(rows * tilesX, quantum) * quantum
        }

        var count: Int { ceilDiv(tilesY, rows) }
    }
}

extension WinogradConvolution {
    private static let defaultLock = NSLock()
    nonisolated(unsafe) private static var defaultValue: VulkanConvolutionMethod = {
        switch ProcessInfo.processInfo.environment["PSIC_VULKAN_WINOGRAD"] {
        case "on", "1": return .winograd
        case "off", "0": return .direct
        default: return .automatic
        }
    }()

    /// The method of backends created without one: `PSIC_VULKAN_WINOGRAD=auto|on|off`, else
    /// automatic.
    static var defaultMethod: VulkanConvolutionMethod {
        defaultLock.lock()
        defer { defaultLock.unlock() }
        return defaultValue
    }

    /// Replaces the environment's choice (tests run layers both ways; set before preparing graphs).
    static func setDefaultMethod(_ m: VulkanConvolutionMethod) {
        defaultLock.lock()
        defaultValue = m
        defaultLock.unlock()
    }
}
