import CVulkan
import Foundation
import PSICEngine

/// Runs engine graphs as Vulkan compute shaders on one device.
///
/// A backend owns the device, a pool of buffers, the compiled pipelines and the uploaded
/// weights of every layer it has prepared; graphs prepared from the same backend share all of
/// them. It is safe to use from several threads: shared state is behind locks, and each
/// prepared graph serialises its own runs.
public final class VulkanBackend: Backend, @unchecked Sendable {
    public let name: String
    /// Kernels bind whole tensors as storage buffers: the device's storage buffer range.
    public var maxTensorBytes: Int { device.maxStorageBufferRange }
    /// The device this backend runs on.
    public let deviceInfo: VulkanDeviceInfo

    let device: VulkanDevice
    let bufferPool: BufferPool
    let pipelines: PipelineCache

    /// Parameters uploaded once per layer object. The cache holds the layer weakly: when a
    /// model is released its entries go with the next upload (prepared graphs that still use
    /// them hold them), so a backend that outlives many models does not keep all their weights.
    final class UploadedParameters: @unchecked Sendable {
        private(set) weak var layer: AnyObject?
        let buffer: VulkanBuffer
        let packed: PackedParameters
        /// Four-component texel view of the parameters.
        let texelView: VkBufferView
        init(layer: AnyObject, buffer: VulkanBuffer, packed: PackedParameters) throws {
            self.layer = layer
            self.buffer = buffer
            self.packed = packed
            texelView = try buffer.device.makeView(
                buffer, format: packed.isInteger ? VK_FORMAT_R32G32B32A32_SINT : VK_FORMAT_R32G32B32A32_SFLOAT,
                elements: packed.count / 4, elementSize: 16)
        }
        deinit { buffer.device.destroyView(texelView) }
    }
    private let parameterLock = NSLock()
    /// How a layer's parameters are laid out for its kernel, with the output-channel block
    /// they are packed for: one layer can be packed several ways (tests run it under
    /// several tilings and routes).
    enum Packing: Hashable {
        /// conv2d / conv_transpose2d / the integer and GDN kernels: `[block][ci][taps][block channels]`.
        case texel(block: Int)
        /// The subgroup kernels: `[block][ci][o][taps]` (per phase for transposed convs).
        case subgroup(block: Int)
        /// Winograd-transformed weights, `[point][block][c][o]`.
        case winograd(block: Int)
    }
    private struct ParameterKey: Hashable {
        let layer: ObjectIdentifier
        let packing: Packing
    }
    private var parameters: [ParameterKey: UploadedParameters] = [:]

    /// How many uploaded parameter sets the cache holds (tests).
    var cachedParameterCount: Int {
        parameterLock.lock()
        defer { parameterLock.unlock() }
        return parameters.count
    }

    /// Opens a device: the one `selector` names, else `PSIC_VULKAN_DEVICE`, else the best one
    /// (discrete GPU, integrated GPU, virtual GPU, CPU). Throws `VulkanError` when Vulkan,
    /// a driver or a matching device is missing.
    public convenience init(device selector: VulkanDeviceSelector? = nil) throws {
        try self.init(device: selector, forceStaging: false)
    }

    /// A backend on `device` (index or name substring, as in `PSIC_VULKAN_DEVICE`) that runs
    /// 5x5 stride-2 convolutions by `convolutions`; nil: `PSIC_VULKAN_WINOGRAD`, else automatic.
    /// The method is named in `name` when given, so benchmarks can tell two backends apart.
    public convenience init(device: String?, convolutions: VulkanConvolutionMethod?) throws {
        try self.init(device: device.map { VulkanDeviceSelector($0) }, forceStaging: false, convolutions: convolutions)
    }

    /// How 5x5 stride-2 convolutions run (nil: the process-wide choice, `WinogradConvolution.defaultMethod`).
    let convolutions: VulkanConvolutionMethod?

    /// Kernels read inputs as storage buffers instead of texel views, as they do for tensors
    /// beyond maxTexelBufferElements (for tests; set before preparing graphs).
    let storageInputs: Bool

    /// `forceStaging`: route all transfers through staging buffers even where tensor memory
    /// could be mapped (the discrete-GPU path). `storageInputs`: see the property. `limits`:
    /// device limits lowered for tests.
    init(device selector: VulkanDeviceSelector?, forceStaging: Bool, storageInputs: Bool = false,
         convolutions: VulkanConvolutionMethod? = nil, limits: VulkanLimitOverrides = .init()) throws {
        self.storageInputs = storageInputs
        self.convolutions = convolutions
        let dev = try VulkanDevice(selector: selector ?? .fromEnvironment, forceStaging: forceStaging, limits: limits)
        device = dev
        deviceInfo = dev.info
        name = "vulkan: \(dev.info.name)" + (convolutions.map { " (\($0.rawValue))" } ?? "")
        bufferPool = BufferPool(device: dev)
        pipelines = try PipelineCache(device: dev)
    }

    /// `device` is an index or a name substring, as in `PSIC_VULKAN_DEVICE`.
    public convenience init(device: String?) throws {
        try self.init(device: device.map { VulkanDeviceSelector($0) })
    }

    /// Every Vulkan device the loader sees, for `psic devices`. Throws when there is no loader or driver.
    public static func availableDevices() throws -> [VulkanDeviceInfo] {
        try VulkanInstance.shared().devices
    }

    /// Why Vulkan cannot be used here, or nil when at least one compute device exists.
    public static func unavailableReason() -> String? {
        do {
            let devices = try availableDevices()
            return devices.contains(where: \.hasComputeQueue) ? nil : VulkanError.noComputeDevice.description
        } catch {
            return "\(error)"
        }
    }

    public func prepare(_ graph: Graph) throws -> PreparedGraph {
        try VulkanPreparedGraph(backend: self, graph: graph)
    }

    /// Uploaded parameters of `layer` (of the graph node `node`), packing and uploading them on
    /// first use. Kernels read parameters through one texel view, so a layer with more than
    /// `maxTexelBufferElements` four-component texels cannot run here (the spec's minimum is
    /// 65536: 262144 values; the shipped model's largest layer has 384000).
    func parameters(for layer: AnyObject, node: String, packing: Packing, pack: () -> PackedParameters) throws -> UploadedParameters {
        let id = ParameterKey(layer: ObjectIdentifier(layer), packing: packing)
        parameterLock.lock()
        defer { parameterLock.unlock() }
        // The layer must be the one the entry was made for: a released layer's identifier can
        // come back for a new object at the same address.
        if let p = parameters[id], p.layer === layer { return p }
        parameters = parameters.filter { $0.value.layer != nil }
        let packed = pack().paddedToTexels()
        guard packed.count / 4 <= device.maxTexelBufferElements else {
            throw VulkanError.unsupportedOp(node: node, reason: "its \(packed.count) packed parameters exceed the device's texel "
                                            + "buffer limit of \(device.maxTexelBufferElements) four-value texels; use the CPU backend")
        }
        // Owned by the cache for the backend's lifetime rather than pooled: weights are
        // reused by every image.
        let buffer = try VulkanBuffer(device: device, kind: .device, size: max(packed.byteCount, 4))
        try upload(packed, to: buffer)
        let entry = try UploadedParameters(layer: layer, buffer: buffer, packed: packed)
        parameters[id] = entry
        return entry
    }

    private func upload(_ packed: PackedParameters, to buffer: VulkanBuffer) throws {
        func write(_ dst: UnsafeMutableRawPointer) {
            switch packed.storage {
            case let .floats(v): v.withUnsafeBytes { dst.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            case let .ints(v): v.withUnsafeBytes { dst.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            }
        }
        if let mapped = buffer.mapped {
            write(mapped)
            return
        }
        let staging = try bufferPool.acquire(bytes: packed.byteCount, kind: .staging)
        defer { bufferPool.release(staging) }
        write(staging.mapped!)
        try device.runOnce { cb in
            var region = VkBufferCopy(srcOffset: 0, dstOffset: 0, size: VkDeviceSize(packed.byteCount))
            device.vk.cmdCopyBuffer(cb, staging.handle, buffer.handle, 1, &region)
        }
    }

    /// The float kernels' ACT code (0 none, 1 ReLU, 2 leaky ReLU); the leaky slope goes to `push`.
    private static func encode(_ a: Activation, into push: inout KernelPushConstants) -> Int32 {
        switch a {
        case .none: return 0
        case .relu: return 1
        case let .leakyReLU(slope):
            push.leakySlope = slope
            return 2
        }
    }

    /// The integer kernels' ACT code; the output range and leaky numerator go to `push`.
    private static func encode(_ q: IntegerRequantization, into push: inout KernelPushConstants) -> Int32 {
        push.outMin = q.outputMin
        push.outMax = q.outputMax
        switch q.activation {
        case .none: return 0
        case .relu: return 1
        case let .leakyReLU(k):
            push.leakyNumerator = k
            return 2
        }
    }

    /// The dispatches computing `node`, with views given as element offsets into their buffers.
    func plan(_ node: GraphNode, inOffset: Int, outOffset: Int, inputElements: Int) throws -> NodeKernels {
        var push = KernelPushConstants()
        push.inC = Int32(node.inputShape.channels)
        push.inH = Int32(node.inputShape.height)
        push.inW = Int32(node.inputShape.width)
        push.outC = Int32(node.outputShape.channels)
        push.outH = Int32(node.outputShape.height)
        push.outW = Int32(node.outputShape.width)
        push.inOffset = Int32(inOffset)
        push.outOffset = Int32(outOffset)
        let out = node.outputShape
        // Specialization constant 10: read the input through its texel view.
        let texel: Int32 = inputElements <= device.maxTexelBufferElements && !storageInputs ? 1 : 0

        // Every push-constant field is final before any dispatch copies `push`: the activation's
        // parameters (leaky slope, integer output range) are set here, once, and the kernels
        // below only take the code of their ACT specialization constant.
        let act: Int32
        switch node.op {
        case let .conv2d(l): act = Self.encode(l.activation, into: &push)
        case let .convTranspose2d(l): act = Self.encode(l.activation, into: &push)
        case let .intConv2d(l): act = Self.encode(l.requantization, into: &push)
        case .gdn: act = 0
        }
        // Conv-family kernels: spec constants LX, LY, ACT, K, S, P, OCB, PX (+ RY, RX).
        func convDispatches(kernel: ShaderLibrary.Kernel, act: Int32, k: Int, s: Int, p: Int,
                            tiling t: ConvTiling, transposed: Bool, params: UploadedParameters) throws -> [KernelDispatch] {
            push.biasOffset = Int32(params.packed.biasOffset)
            push.multiplierOffset = Int32(params.packed.multiplierOffset)
            push.shiftOffset = Int32(params.packed.shiftOffset)
            let base: [Int32] = [t.groupX, t.groupY].map(Int32.init) + [act] + [k, s, p, t.outputChannels, t.pixels].map(Int32.init)
            let blocks = ceilDiv(out.channels, t.outputChannels)
            if !transposed {
                // Quad input fetches need rows and windows aligned to 4 elements.
                let vec: Int32 = texel == 1 && node.inputShape.width % 4 == 0 && inOffset % 4 == 0
                    && (s * t.pixels) % 4 == 0 ? 1 : 0
                let pipe = try pipelines.pipeline(kernel, constants: base + [0, 0, texel, vec, Int32(t.rows)])
                return [KernelDispatch(pipeline: pipe, push: push,
                                       groups: (ceilDiv(out.width, t.pixels * t.groupX),
                                                ceilDiv(out.height, t.groupY * t.rows), blocks))]
            }
            var list: [KernelDispatch] = []
            for ry in 0..<s {
                for rx in 0..<s {
                    let qH = ceilDiv(out.height - ry, s), qW = ceilDiv(out.width - rx, s)
                    guard qH > 0, qW > 0 else { continue }
                    var ph = push
                    ph.qH = Int32(qH)
                    ph.qW = Int32(qW)
                    let vec: Int32 = texel == 1 && node.inputShape.width % 4 == 0 && inOffset % 4 == 0
                        && t.pixels % 4 == 0 ? 1 : 0
                    let pipe = try pipelines.pipeline(kernel, constants: base + [Int32(ry), Int32(rx), texel, vec, Int32(t.rows)])
                    list.append(KernelDispatch(pipeline: pipe, push: ph,
                                               groups: (ceilDiv(qW, t.pixels * t.groupX), ceilDiv(qH, t.groupY * t.rows), blocks)))
                }
            }
            return list
        }

        // The subgroup kernels hard-code 8-lane subgroups and need whole subgroups.
        func runsSubgroupKernel(_ u: ConvTiling) -> Bool {
            u.subgroupWeights && deviceInfo.subgroupSize == 8 && deviceInfo.supportsSubgroupShuffle
                && (u.groupX * u.groupY) % 8 == 0 && u.outputChannels % 4 == 0
        }

        switch node.op {
        case let .conv2d(l):
            let u = ConvTiling.forConv(outChannels: l.outChannels, device: deviceInfo.type)
            if WinogradConvolution.runs(l, on: deviceInfo, method: convolutions) {
                if let kernels = try winogradKernels(l, .init(l, output: out), node: node, inputElements: inputElements, push: push, act: act, pack: {
                    WinogradConvolution.pack(l, outputChannels: $0.outputChannels)
                }) { return kernels }
            }
            if runsSubgroupKernel(u) {
                let params = try parameters(for: l, node: node.op.name, packing: .subgroup(block: u.outputChannels)) { ParameterPacking.convSubgroup(l, tiling: u) }
                // Same specialization constants and grid as conv2d; only the kernel and packing differ.
                return NodeKernels(dispatches: try convDispatches(kernel: .conv2d_subgroup, act: act,
                                                                  k: l.kernelSize, s: l.stride, p: l.padding, tiling: u,
                                                                  transposed: false, params: params), parameters: params)
            }
            let t = ConvTiling.texelConv(outChannels: l.outChannels, device: deviceInfo.type)
            let params = try parameters(for: l, node: node.op.name, packing: .texel(block: t.outputChannels)) { ParameterPacking.conv(l, tiling: t) }
            return NodeKernels(dispatches: try convDispatches(kernel: .conv2d, act: act, k: l.kernelSize,
                                                              s: l.stride, p: l.padding, tiling: t, transposed: false,
                                                              params: params), parameters: params)
        case let .convTranspose2d(l):
            if WinogradConvolution.runs(l, on: deviceInfo, method: convolutions) {
                if let kernels = try winogradKernels(l, .init(l, output: out), node: node, inputElements: inputElements, push: push, act: act, pack: {
                    WinogradConvolution.pack(l, outputChannels: $0.outputChannels)
                }) { return kernels }
            }
            let u = ConvTiling.forConvTranspose(outChannels: l.outChannels, device: deviceInfo.type)
            if runsSubgroupKernel(u) {
                let params = try parameters(for: l, node: node.op.name, packing: .subgroup(block: u.outputChannels)) {
                    ParameterPacking.convTransposeSubgroup(l, tiling: u)
                }
                return NodeKernels(dispatches: try convDispatches(kernel: .conv_transpose2d_subgroup,
                                                                  act: act, k: l.kernelSize,
                                                                  s: l.stride, p: l.padding, tiling: u, transposed: true,
                                                                  params: params), parameters: params)
            }
            let t = ConvTiling.texelConv(outChannels: l.outChannels, device: deviceInfo.type)
            let params = try parameters(for: l, node: node.op.name, packing: .texel(block: t.outputChannels)) { ParameterPacking.convTranspose(l, tiling: t) }
            return NodeKernels(dispatches: try convDispatches(kernel: .conv_transpose2d, act: act,
                                                              k: l.kernelSize, s: l.stride, p: l.padding, tiling: t,
                                                              transposed: true, params: params), parameters: params)
        case let .intConv2d(l):
            guard deviceInfo.supportsInt64 else {
                throw VulkanError.unsupportedFeature(feature: "shaderInt64 (needed by the integer requantisation)",
                                                     device: deviceInfo.name)
            }
            let t = ConvTiling.forIntConv(outChannels: l.outChannels)
            let params = try parameters(for: l, node: node.op.name, packing: .texel(block: t.outputChannels)) { ParameterPacking.intConv(l, tiling: t) }
            return NodeKernels(dispatches: try convDispatches(kernel: l.transposed ? .int_conv_transpose2d : .int_conv2d,
                                                              act: act, k: l.kernelSize,
                                                              s: l.stride, p: l.padding, tiling: t,
                                                              transposed: l.transposed, params: params), parameters: params)
        case let .gdn(l):
            let t = GDNTiling.forGDN(channels: l.channels, device: deviceInfo.type)
            let vec: Int32 = texel == 1 && out.planeSize % 4 == 0 && inOffset % 4 == 0 && t.pixels % 4 == 0 ? 1 : 0
            let params = try parameters(for: l, node: node.op.name, packing: .texel(block: t.channels)) { ParameterPacking.gdn(l, tiling: t) }
            push.biasOffset = Int32(params.packed.biasOffset)
            let pipe = try pipelines.pipeline(.gdn, constants: [Int32(t.groupX), 1, 0, Int32(t.channels),
                                                                 Int32(t.pixels), l.inverse ? 1 : 0, 0, 0, 0, 0, texel, vec])
            let plane = out.planeSize
            return NodeKernels(dispatches: [KernelDispatch(pipeline: pipe, push: push,
                                                           groups: (ceilDiv(plane, t.pixels * t.groupX), 1,
                                                                    ceilDiv(l.channels, t.channels)))],
                               parameters: params)
        }
    }

    /// The bands of a Winograd convolution (see `WinogradConvolution`): per band the input
    /// transform (node input to scratch 0), the products (scratch 0 to 1) and the output
    /// transform (scratch 1 to node output), ordered by the recording's hazard tracking. Nil when one band's
    /// scratch or its weights would exceed the device's texel-view or storage limits (then the
    /// direct kernel runs the layer).
    private func winogradKernels(_ layer: AnyObject, _ g: WinogradConvolution.Geometry, node: GraphNode,
                                 inputElements: Int, push base: KernelPushConstants, act: Int32,
                                 pack: (WinogradConvolution.Tiling) -> PackedParameters) throws -> NodeKernels? {
        let t = WinogradConvolution.Tiling.forLayer(outChannels: g.productChannels)
        let out = node.outputShape
        let bands = WinogradConvolution.Bands(gridHeight: g.gridHeight, gridWidth: g.gridWidth,
                                              scratchChannels: g.scratchChannels, tiling: t)
        let zC = g.scratchChannels
        let vElements = 36 * zC * bands.stride, mElements = 36 * g.productChannels * bands.stride
        guard vElements / 4 <= device.maxTexelBufferElements, mElements <= device.maxTexelBufferElements,
              max(vElements, mElements) * 4 <= device.maxStorageBufferRange else { return nil }
        // Winograd weights take ~6× the direct kernel's; past the texel limit the direct kernel runs.
        let params: UploadedParameters
        do {
            params = try parameters(for: layer, node: node.op.name, packing: .winograd(block: t.outputChannels)) { pack(t) }
        } catch VulkanError.unsupportedOp {
            return nil
        }
        let texel: Int32 = inputElements <= device.maxTexelBufferElements && !storageInputs ? 1 : 0
        let lx = 16  // transforms: one invocation per tile quad and channel, no subgroup operations
        // Quad input fetches need 4-aligned rows; quad output stores 4-aligned output rows.
        let vecIn: Int32 = texel == 1 && node.inputShape.width % 4 == 0 && base.inOffset % 4 == 0 ? 1 : 0
        let vecOut: Int32 = out.width % 4 == 0 && base.outOffset % 4 == 0 ? 1 : 0
        let cpi = t.transformChannels
        let input = try pipelines.pipeline(.conv2d_winograd_input, constants: [Int32(lx), 1, 0, 5, g.inputPhases ? 2 : 1,
                                                                              Int32(g.padding), Int32(cpi), 0, 0, 0, texel,
                                                                              vecIn])
        // Channels per product-loop step: a divisor of the scratch channels.
        let cu: Int32 = zC % 4 == 0 ? 4 : zC % 2 == 0 ? 2 : 1
        let gemm = try pipelines.pipeline(.conv2d_winograd_gemm, constants: [Int32(t.groupX), 1, 0, 0, 0, 0,
                                                                            Int32(t.outputChannels), Int32(t.tileQuads),
                                                                            cu, 0, 1])
        let output = try pipelines.pipeline(.conv2d_winograd_output, constants: [Int32(lx), 1, act, 0, 0, 0, Int32(cpi), 0, 0,
                                                                                0, 1, vecOut, g.depthToSpace ? 1 : 0])
        var dispatches: [KernelDispatch] = []
        for band in 0..<bands.count {
            var p = base
            p.biasOffset = Int32(params.packed.biasOffset)
            p.tileRow0 = Int32(band * bands.rows)
            p.tilesX = Int32(bands.tilesX)
            let tiles = min(bands.rows, bands.tilesY - band * bands.rows) * bands.tilesX
            p.bandTiles = Int32(tiles)
            p.bandStride = Int32(bands.stride)
            var toScratch = p
            toScratch.outOffset = 0
            dispatches.append(KernelDispatch(pipeline: input, push: toScratch,
                                             groups: (ceilDiv(tiles / 4, lx), ceilDiv(node.inputShape.channels, cpi), 1),
                                             source: .nodeInput, destination: .scratch(0)))
            var product = toScratch
            product.inOffset = 0
            product.inC = Int32(zC)
            product.outC = Int32(g.productChannels)
            dispatches.append(KernelDispatch(pipeline: gemm, push: product,
                                             groups: (ceilDiv(tiles, 4 * t.tileQuads * t.groupX), 36,
                                                      ceilDiv(g.productChannels, t.outputChannels)),
                                             source: .scratch(0), destination: .scratch(1)))
            var fromScratch = p
            fromScratch.inOffset = 0
            dispatches.append(KernelDispatch(pipeline: output, push: fromScratch,
                                             groups: (ceilDiv(tiles / 4, lx), ceilDiv(g.productChannels, cpi), 1),
                                             source: .scratch(1), destination: .nodeOutput))
        }
        return NodeKernels(dispatches: dispatches, parameters: params, scratchElements: [vElements, mElements])
    }
}
