import CVulkan
import Foundation
import PSICEngine

/// Register blocking of the convolution kernels: each invocation computes `outputChannels`
/// x `rows` x `pixels` outputs; a workgroup is `groupX` x `groupY` invocations.
/// `subgroupWeights`: run a float conv2d as conv2d_subgroup (weights fetched once per
/// subgroup and shuffled to its lanes) where the device allows, else as conv2d.
struct ConvTiling: Hashable, Sendable {
    var outputChannels: Int
    var pixels: Int
    var groupX: Int
    var groupY: Int
    var rows: Int = 1
    var subgroupWeights = false

    /// `PSIC_VULKAN_CONV_TILE=ocb,px,lx,ly[,py[,s]]` overrides the defaults, for tuning
    /// (`s` 1: conv2d_subgroup).
    static func forConv(outChannels: Int, device: VulkanDeviceType) -> ConvTiling {
        if let o = override { return o }
        // A multiple of 4: weights are fetched four output channels at a time.
        let ocb = max(4, nextPowerOfTwo(outChannels))
        if device == .cpu {
            // lavapipe, float conv2d and transposed conv: the subgroup kernels (see
            // conv2d_subgroup.comp for why). On the analysis transform's 5x5/2 layers 32 channels
            // x 1 row x 4 pixels measured 1.3x faster than 16 x 2 x 4 and 8 x 2 x 4; 32 x 2 x 4,
            // 32 x 1 x 8 and 64 x 1 x 4 took minutes to compile. On g_s's last layer (3
            // channels) 4 x 4 x 8 measured no faster than 4 x 1 x 4.
            return ConvTiling(outputChannels: min(32, ocb), pixels: 4, groupX: 8, groupY: 2, rows: 1, subgroupWeights: true)
        }
        return texelConv(outChannels: outChannels, device: device)
    }

    /// The tiling of a float transposed conv: on CPU devices conv_transpose2d_subgroup with the
    /// conv2d_subgroup blocking, elsewhere conv_transpose2d.
    static func forConvTranspose(outChannels: Int, device: VulkanDeviceType) -> ConvTiling {
        if let o = override { return o }
        if device == .cpu { return forConv(outChannels: outChannels, device: device) }
        return texelConv(outChannels: outChannels, device: device)
    }

    /// The tiling of the conv2d / conv_transpose2d kernels (weights through texel fetches).
    static func texelConv(outChannels: Int, device: VulkanDeviceType) -> ConvTiling {
        if let o = override { return ConvTiling(outputChannels: o.outputChannels, pixels: o.pixels, groupX: o.groupX,
                                                groupY: o.groupY, rows: o.rows) }
        let ocb = max(4, nextPowerOfTwo(outChannels))
        if device == .cpu {
            // lavapipe: every fetch costs tens of cycles (the sampler path per lane) while
            // spilled accumulators cost an L1 load/store, so blocks far beyond the register
            // file win: 16 channels x 2 rows x 8 pixels, measured best on the analysis
            // transform's 5x5/2 layers (about 2x the 8x1x4 GPU tiling). Layers with few
            // output channels (the RGB output) take more rows instead: 4 x 4 x 8 measured 1.4x
            // faster than 4 x 2 x 8 on g_s's last layer.
            let c = min(16, ocb)
            return ConvTiling(outputChannels: c, pixels: 8, groupX: 8, groupY: 2, rows: c >= 16 ? 2 : c == 8 ? 3 : 4)
        }
        // GPUs: 32 accumulators per invocation stay in registers, 64-invocation workgroups.
        return ConvTiling(outputChannels: min(8, ocb), pixels: 4, groupX: 16, groupY: 4, rows: 1)
    }

    /// Integer layers run on the entropy model's small grids (1/16 and 1/64 of the image),
    /// where big blocks would mostly compute padding and only cost compile time.
    static func forIntConv(outChannels: Int) -> ConvTiling {
        if let o = override { return o }
        return ConvTiling(outputChannels: min(8, max(4, nextPowerOfTwo(outChannels))), pixels: 4, groupX: 8, groupY: 4, rows: 1)
    }

    static var override: ConvTiling? {
        overrideLock.lock()
        defer { overrideLock.unlock() }
        return overrideValue
    }

    /// Replaces the environment's override (tests use it to run the kernels under each tiling).
    static func setOverride(_ tiling: ConvTiling?) {
        overrideLock.lock()
        overrideValue = tiling
        overrideLock.unlock()
    }

    private static let overrideLock = NSLock()
    nonisolated(unsafe) private static var overrideValue: ConvTiling? = {
        guard let s = ProcessInfo.processInfo.environment["PSIC_VULKAN_CONV_TILE"] else { return nil }
        let v = s.split(separator: ",").compactMap { Int($0) }
        guard (4...6).contains(v.count), v.prefix(5).allSatisfy({ $0 > 0 }), v[0] % 4 == 0 else { return nil }
        return ConvTiling(outputChannels: v[0], pixels: v[1], groupX: v[2], groupY: v[3], rows: v.count >= 5 ? v[4] : 1,
                          subgroupWeights: v.count == 6 && v[5] == 1)
    }()
}

/// Blocking of the GDN kernel: `channels` x `pixels` outputs per invocation.
struct GDNTiling: Hashable, Sendable {
    var channels: Int
    var pixels: Int
    var groupX: Int

    /// Channels a multiple of 4 (gamma is fetched four channels per texel). lavapipe wants
    /// big blocks for the reason given in `ConvTiling.texelConv`.
    /// `PSIC_VULKAN_GDN_TILE=cb,px,lx` overrides the defaults, for tuning.
    static func forGDN(channels: Int, device: VulkanDeviceType) -> GDNTiling {
        if let o = override { return o }
        let cb = max(4, nextPowerOfTwo(channels))
        if device == .cpu { return GDNTiling(channels: min(32, cb), pixels: 16, groupX: 8) }
        return GDNTiling(channels: min(8, cb), pixels: 4, groupX: 64)
    }
}

extension GDNTiling {
    static let override: GDNTiling? = {
        guard let s = ProcessInfo.processInfo.environment["PSIC_VULKAN_GDN_TILE"] else { return nil }
        let v = s.split(separator: ",").compactMap { Int($0) }
        guard v.count == 3, v.allSatisfy({ $0 > 0 }), v[0] % 4 == 0 else { return nil }
        return GDNTiling(channels: v[0], pixels: v[1], groupX: v[2])
    }()
}

func nextPowerOfTwo(_ n: Int) -> Int {
    var p = 1
    while p < n { p <<= 1 }
    return p
}

func ceilDiv(_ a: Int, _ b: Int) -> Int { (a + b - 1) / b }

/// A layer's parameters packed the way its kernel reads them, ready to upload.
struct PackedParameters {
    enum Storage {
        case floats([Float])
        case ints([Int32])
    }
    var storage: Storage
    var biasOffset = 0
    var multiplierOffset = 0
    var shiftOffset = 0

    /// Pads to whole four-element texels (the kernels read parameters as RGBA texels).
    func paddedToTexels() -> PackedParameters {
        var p = self
        switch storage {
        case let .floats(v): p.storage = .floats(v + [Float](repeating: 0, count: (4 - v.count % 4) % 4))
        case let .ints(v): p.storage = .ints(v + [Int32](repeating: 0, count: (4 - v.count % 4) % 4))
        }
        return p
    }

    var isInteger: Bool {
        if case .ints = storage { return true }
        return false
    }

    var count: Int { byteCount / 4 }

    var byteCount: Int {
        switch storage {
        case let .floats(v): return v.count * 4
        case let .ints(v): return v.count * 4
        }
    }
}

enum ParameterPacking {
    /// Conv weights to `[block][ci][ky][kx][ocb]`, from `[co][ci][k][k]` or, when
    /// `transposed`, `[ci][co][k][k]`; output channels past `outC` are zero.
    static func convWeights<T: Numeric>(_ w: [T], inC: Int, outC: Int, k: Int, ocb: Int, transposed: Bool) -> [T] {
        let blocks = ceilDiv(outC, ocb)
        let kk = k * k
        var out = [T](repeating: 0, count: blocks * inC * kk * ocb)
        for co in 0..<outC {
            let b = co / ocb, o = co % ocb
            for ci in 0..<inC {
                let src = transposed ? (ci * outC + co) * kk : (co * inC + ci) * kk
                let dst = (b * inC + ci) * kk * ocb + o
                for t in 0..<kk { out[dst + t * ocb] = w[src + t] }
            }
        }
        return out
    }

    static func padded<T: Numeric>(_ v: [T], to count: Int) -> [T] {
        v + [T](repeating: 0, count: count - v.count)
    }

    static func conv(_ l: Conv2dLayer, tiling: ConvTiling) -> PackedParameters {
        let w = convWeights(l.weights, inC: l.inChannels, outC: l.outChannels, k: l.kernelSize,
                            ocb: tiling.outputChannels, transposed: false)
        let bias = padded(l.bias, to: ceilDiv(l.outChannels, tiling.outputChannels) * tiling.outputChannels)
        return PackedParameters(storage: .floats(w + bias), biasOffset: w.count)
    }

    /// Weights `[block][ci][o][ky][kx]` for conv2d_subgroup, then bias; output channels past
    /// `outC` are zero.
    static func convSubgroup(_ l: Conv2dLayer, tiling: ConvTiling) -> PackedParameters {
        let ocb = tiling.outputChannels, kk = l.kernelSize * l.kernelSize, inC = l.inChannels
        let blocks = ceilDiv(l.outChannels, ocb)
        var w = [Float](repeating: 0, count: blocks * inC * ocb * kk)
        for co in 0..<l.outChannels {
            let b = co / ocb, o = co % ocb
            for ci in 0..<inC {
                let src = (co * inC + ci) * kk
                let dst = ((b * inC + ci) * ocb + o) * kk
                for t in 0..<kk { w[dst + t] = l.weights[src + t] }
            }
        }
        let bias = padded(l.bias, to: blocks * ocb)
        assert(w.count % 4 == 0 && ocb % 4 == 0, "the subgroup kernels fetch the bias four channels per texel")
        return PackedParameters(storage: .floats(w + bias), biasOffset: w.count)
    }

    /// Weights for conv_transpose2d_subgroup: for each output phase (ry, rx) in row-major
    /// order, only the taps that hit it (`ConvTranspose2dLayer.phaseTaps`, ascending),
    /// `[phase][block][ci][o][a][b]`; then bias. Output channels past `outC` are zero.
    static func convTransposeSubgroup(_ l: ConvTranspose2dLayer, tiling: ConvTiling) -> PackedParameters {
        let ocb = tiling.outputChannels, k = l.kernelSize, s = l.stride, inC = l.inChannels, outC = l.outChannels
        let blocks = ceilDiv(outC, ocb)
        var w: [Float] = []
        for ry in 0..<s {
            for rx in 0..<s {
                let ys = l.phaseTaps(ry), xs = l.phaseTaps(rx)
                var phase = [Float](repeating: 0, count: blocks * inC * ocb * ys.count * xs.count)
                for co in 0..<outC {
                    let b = co / ocb, o = co % ocb
                    for ci in 0..<inC {
                        let src = (ci * outC + co) * k * k
                        var dst = ((b * inC + ci) * ocb + o) * ys.count * xs.count
                        for ky in ys {
                            for kx in xs {
                                phase[dst] = l.weights[src + ky * k + kx]
                                dst += 1
                            }
                        }
                    }
                }
                w += phase
            }
        }
        let bias = padded(l.bias, to: blocks * ocb)
        assert(w.count % 4 == 0 && ocb % 4 == 0, "the subgroup kernels fetch the bias four channels per texel")
        return PackedParameters(storage: .floats(w + bias), biasOffset: w.count)
    }

    static func convTranspose(_ l: ConvTranspose2dLayer, tiling: ConvTiling) -> PackedParameters {
        let w = convWeights(l.weights, inC: l.inChannels, outC: l.outChannels, k: l.kernelSize,
                            ocb: tiling.outputChannels, transposed: true)
        let bias = padded(l.bias, to: ceilDiv(l.outChannels, tiling.outputChannels) * tiling.outputChannels)
        return PackedParameters(storage: .floats(w + bias), biasOffset: w.count)
    }

    static func intConv(_ l: IntConv2dLayer, tiling: ConvTiling) -> PackedParameters {
        let w = convWeights(l.weights.map(Int32.init), inC: l.inChannels, outC: l.outChannels, k: l.kernelSize,
                            ocb: tiling.outputChannels, transposed: l.transposed)
        let bias = padded(l.bias, to: ceilDiv(l.outChannels, tiling.outputChannels) * tiling.outputChannels)
        let q = l.requantization
        let all = w + bias + q.multiplier + q.shift
        return PackedParameters(storage: .ints(all), biasOffset: w.count, multiplierOffset: w.count + bias.count,
                                shiftOffset: w.count + bias.count + q.multiplier.count)
    }

    /// gamma `[i][j]` to `[block][j][cb]`, then beta, both zero-padded to whole blocks.
    /// Padded channels get beta 1 so their (unused) accumulators never hit sqrt(0).
    static func gdn(_ l: GDNLayer, tiling: GDNTiling) -> PackedParameters {
        let cb = tiling.channels
        let c = l.channels
        let blocks = ceilDiv(c, cb)
        var g = [Float](repeating: 0, count: blocks * c * cb)
        for i in 0..<c {
            for j in 0..<c { g[((i / cb) * c + j) * cb + i % cb] = l.gamma[i * c + j] }
        }
        let beta = l.beta + [Float](repeating: 1, count: blocks * cb - c)
        return PackedParameters(storage: .floats(g + beta), biasOffset: g.count)
    }
}

/// A buffer a dispatch binds as its input (bindings 0, 3, 5) or output (binding 1).
enum DispatchBuffer: Hashable {
    /// The node's input or output tensor.
    case nodeInput, nodeOutput
    /// Scratch slot `n` of the prepared graph (see `NodeKernels.scratchElements`).
    case scratch(Int)
}

/// One vkCmdDispatch of a node.
struct KernelDispatch {
    let pipeline: ComputePipeline
    var push: KernelPushConstants
    let groups: (x: Int, y: Int, z: Int)
    var source: DispatchBuffer = .nodeInput
    var destination: DispatchBuffer = .nodeOutput
}

/// What a node needs recorded: its dispatches, its uploaded parameters and the scratch it
/// uses between dispatches (elements per scratch slot; slots are shared by all nodes of a
/// graph, and the recording orders every access to them by its sources and destinations).
struct NodeKernels {
    var dispatches: [KernelDispatch]
    var parameters: VulkanBackend.UploadedParameters
    var scratchElements: [Int] = []
}
