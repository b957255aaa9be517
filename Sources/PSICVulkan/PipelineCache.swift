import CVulkan
import Foundation

/// Push constants shared by every kernel; must match `PushConstants` in Shaders/common.glsl.
struct KernelPushConstants {
    var inC: Int32 = 0, inH: Int32 = 0, inW: Int32 = 0
    var outC: Int32 = 0, outH: Int32 = 0, outW: Int32 = 0
    var inOffset: Int32 = 0, outOffset: Int32 = 0
    var biasOffset: Int32 = 0
    var multiplierOffset: Int32 = 0
    var shiftOffset: Int32 = 0
    var outMin: Int32 = 0, outMax: Int32 = 0
    var leakyNumerator: Int32 = 0
    var leakySlope: Float = 0
    var qH: Int32 = 0, qW: Int32 = 0
    var tileRow0: Int32 = 0, tilesX: Int32 = 0, bandTiles: Int32 = 0, bandStride: Int32 = 0

    static let size = 21 * 4
}

/// A compute pipeline and the layout it was built with.
struct ComputePipeline: @unchecked Sendable {
    let handle: VkPipeline
    let layout: VkPipelineLayout
    /// Workgroup size (specialization constants 0 and 1).
    let localSize: (x: Int, y: Int)
}

/// Pipelines keyed by kernel and specialization constants. Every kernel has the same
/// interface (Shaders/common.glsl: input, output and parameter storage buffers, texel views
/// of the input and of the parameters, one push-constant block), so one descriptor set
/// layout and one pipeline layout serve all of them.
final class PipelineCache: @unchecked Sendable {
    struct Key: Hashable {
        let kernel: ShaderLibrary.Kernel
        /// Values of specialization constants 0, 1, 2, ... in order.
        let constants: [Int32]
    }

    static let bindingCount = 6

    let device: VulkanDevice
    let setLayout: VkDescriptorSetLayout
    let pipelineLayout: VkPipelineLayout
    private let vkCache: VkPipelineCache
    private let lock = NSLock()
    private var pipelines: [Key: ComputePipeline] = [:]
    private var modules: [ShaderLibrary.Kernel: VkShaderModule] = [:]

    init(device: VulkanDevice) throws {
        self.device = device
        let vk = device.vk
        var bindings = (0..<Self.bindingCount).map { i -> VkDescriptorSetLayoutBinding in
            var b = VkDescriptorSetLayoutBinding()
            b.binding = UInt32(i)
            b.descriptorType = i < 3 ? VK_DESCRIPTOR_TYPE_STORAGE_BUFFER : VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER
            b.descriptorCount = 1
            b.stageFlags = UInt32(VK_SHADER_STAGE_COMPUTE_BIT.rawValue)
            return b
        }
        var setInfo = VkDescriptorSetLayoutCreateInfo()
        setInfo.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO
        setInfo.bindingCount = UInt32(Self.bindingCount)
        var setLayout: VkDescriptorSetLayout?
        try bindings.withUnsafeMutableBufferPointer { bp in
            setInfo.pBindings = UnsafePointer(bp.baseAddress)
            try check(vk.createDescriptorSetLayout(device.handle, &setInfo, nil, &setLayout), "vkCreateDescriptorSetLayout")
        }
        self.setLayout = setLayout!
        // A throwing initialiser runs no deinit: what was created is destroyed here on failure.
        var created = false
        var pipelineLayoutCreated: VkPipelineLayout?
        defer {
            if !created {
                if let layout = pipelineLayoutCreated { vk.destroyPipelineLayout(device.handle, layout, nil) }
                vk.destroyDescriptorSetLayout(device.handle, setLayout!, nil)
            }
        }

        var range = VkPushConstantRange()
        range.stageFlags = UInt32(VK_SHADER_STAGE_COMPUTE_BIT.rawValue)
        range.size = UInt32(KernelPushConstants.size)
        var layoutInfo = VkPipelineLayoutCreateInfo()
        layoutInfo.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO
        layoutInfo.setLayoutCount = 1
        layoutInfo.pushConstantRangeCount = 1
        var layout: VkPipelineLayout?
        var setLayoutVar: VkDescriptorSetLayout? = setLayout
        let r = withUnsafePointer(to: &setLayoutVar) { slp in
            withUnsafePointer(to: &range) { rp in
                layoutInfo.pSetLayouts = slp
                layoutInfo.pPushConstantRanges = rp
                return vk.createPipelineLayout(device.handle, &layoutInfo, nil, &layout)
            }
        }
        try check(r, "vkCreatePipelineLayout")
        pipelineLayout = layout!
        pipelineLayoutCreated = layout

        var cacheInfo = VkPipelineCacheCreateInfo()
        cacheInfo.sType = VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO
        var cache: VkPipelineCache?
        try check(vk.createPipelineCache(device.handle, &cacheInfo, nil, &cache), "vkCreatePipelineCache")
        vkCache = cache!
        created = true
    }

    deinit {
        guard !device.isAbandoned else { return }
        let vk = device.vk
        for p in pipelines.values { vk.destroyPipeline(device.handle, p.handle, nil) }
        for m in modules.values { vk.destroyShaderModule(device.handle, m, nil) }
        vk.destroyPipelineCache(device.handle, vkCache, nil)
        vk.destroyPipelineLayout(device.handle, pipelineLayout, nil)
        vk.destroyDescriptorSetLayout(device.handle, setLayout, nil)
    }

    /// The pipeline for `kernel` specialised with `constants` (ids 0, 1, ...; 0 and 1 are
    /// the workgroup size), built on first use.
    func pipeline(_ kernel: ShaderLibrary.Kernel, constants: [Int32]) throws -> ComputePipeline {
        let key = Key(kernel: kernel, constants: constants)
        // Held across creation: pipelines compile in milliseconds (lavapipe: LLVM, longer),
        // and two threads compiling the same one would waste more than the wait.
        lock.lock()
        defer { lock.unlock() }
        if let p = pipelines[key] { return p }
        let module = try shaderModule(kernel)
        let vk = device.vk
        var entries = constants.indices.map { i -> VkSpecializationMapEntry in
            var e = VkSpecializationMapEntry()
            e.constantID = UInt32(i)
            e.offset = UInt32(i * 4)
            e.size = 4
            return e
        }
        var data = constants
        var pipeline: VkPipeline?
        let r: VkResult = "main".withCString { entryName in
            entries.withUnsafeMutableBufferPointer { ep in
                data.withUnsafeMutableBytes { dp in
                    var spec = VkSpecializationInfo()
                    spec.mapEntryCount = UInt32(ep.count)
                    spec.pMapEntries = UnsafePointer(ep.baseAddress)
                    spec.dataSize = dp.count
                    spec.pData = UnsafeRawPointer(dp.baseAddress)
                    return withUnsafePointer(to: &spec) { sp in
                        var stage = VkPipelineShaderStageCreateInfo()
                        stage.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO
                        stage.stage = VK_SHADER_STAGE_COMPUTE_BIT
                        stage.module = module
                        stage.pName = entryName
                        stage.pSpecializationInfo = sp
                        var info = VkComputePipelineCreateInfo()
                        info.sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO
                        info.stage = stage
                        info.layout = pipelineLayout
                        return vk.createComputePipelines(device.handle, vkCache, 1, &info, nil, &pipeline)
                    }
                }
            }
        }
        try check(r, "vkCreateComputePipelines(\(kernel.rawValue))")
        let p = ComputePipeline(handle: pipeline!, layout: pipelineLayout,
                                localSize: (Int(constants[0]), Int(constants[1])))
        pipelines[key] = p
        return p
    }

    private func shaderModule(_ kernel: ShaderLibrary.Kernel) throws -> VkShaderModule {
        if let m = modules[kernel] { return m }
        var code = kernel.spirv
        var module: VkShaderModule?
        let r = code.withUnsafeMutableBufferPointer { cp in
            var info = VkShaderModuleCreateInfo()
            info.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO
            info.codeSize = cp.count * 4
            info.pCode = UnsafePointer(cp.baseAddress)
            return device.vk.createShaderModule(device.handle, &info, nil, &module)
        }
        try check(r, "vkCreateShaderModule(\(kernel.rawValue))")
        modules[kernel] = module!
        return module!
    }
}
