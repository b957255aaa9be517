import CVulkan
import Foundation
import Synchronization

/// A logical device with one compute queue. Shared by everything a backend creates; the
/// queue is externally synchronised in Vulkan, hence `queueLock`. Command pools are not the
/// device's: each recorder owns one (`VulkanCommandPool`).
final class VulkanDevice: @unchecked Sendable {
    let instance: VulkanInstance
    let info: VulkanDeviceInfo
    let physicalDevice: VkPhysicalDevice
    let handle: VkDevice
    let vk: DeviceFunctions
    let queue: VkQueue
    let queueFamily: UInt32
    /// Nanoseconds per timestamp tick.
    let timestampPeriod: Double
    let timestampMask: UInt64
    /// Largest texel buffer view, in elements; bigger tensors are read as storage buffers.
    let maxTexelBufferElements: Int
    /// Largest storage buffer binding, in bytes; bounds the size of one tensor.
    let maxStorageBufferRange: Int
    /// Largest work-group count of one dispatch along x, y and z.
    let maxWorkGroupCount: (x: Int, y: Int, z: Int)
    let memoryProperties: VkPhysicalDeviceMemoryProperties
    /// Memory type for tensors and weights, and whether the host can map it. On CPU and
    /// integrated devices all memory is host memory, so mapping it skips every staging copy;
    /// on discrete GPUs tensors live in VRAM and move through staging buffers.
    let deviceMemoryType: UInt32
    let deviceMemoryMapped: Bool
    /// Host-visible coherent memory for staging (cached if available: we read results back).
    let stagingMemoryType: UInt32

    private let queueLock = NSLock()
    private let abandoned = Atomic<Bool>(false)
    /// Seconds one submission may run before the device is given up on. The default (30 min)
    /// is long enough for a batch of the largest images on lavapipe, which takes minutes.
    let submissionLimitSeconds: Double

    /// Whether a submission outlived `submissionLimitSeconds`. The device may still be using
    /// that submission's buffers, so from then on nothing is submitted and nothing the device
    /// might touch is freed or reused: buffers, pools and the device itself are leaked, and
    /// every run throws `VulkanError.timeout`.
    var isAbandoned: Bool { abandoned.load(ordering: .acquiring) }

    /// `forceStaging`: never map tensor memory, move data through staging buffers as on a
    /// discrete GPU (lets tests cover that path on lavapipe). `limits`: lower device limits
    /// (tests of what happens past them).
    init(selector: VulkanDeviceSelector, forceStaging: Bool = false, limits: VulkanLimitOverrides = .init()) throws {
        submissionLimitSeconds = limits.submissionSeconds ?? 1800
        instance = try VulkanInstance.shared()
        let fns = instance.functions
        info = try selector.pick(from: instance.devices)
        physicalDevice = instance.physicalDevices[info.index]
        guard let family = VulkanInstance.computeQueueFamily(physicalDevice, functions: fns) else {
            throw VulkanError.noComputeDevice
        }
        queueFamily = family.index
        timestampMask = family.timestampBits >= 64 ? ~0 : (UInt64(1) << UInt64(family.timestampBits)) - 1
        var props = VkPhysicalDeviceProperties()
        fns.getPhysicalDeviceProperties(physicalDevice, &props)
        timestampPeriod = Double(props.limits.timestampPeriod)
        maxTexelBufferElements = min(Int(props.limits.maxTexelBufferElements), limits.texelBufferElements ?? .max)
        maxStorageBufferRange = Int(props.limits.maxStorageBufferRange)
        let groups = props.limits.maxComputeWorkGroupCount
        maxWorkGroupCount = limits.workGroupCount ?? (Int(groups.0), Int(groups.1), Int(groups.2))

        var priority: Float = 1
        var device: VkDevice?
        let physicalDevice = self.physicalDevice
        let int64 = info.supportsInt64
        let result: VkResult = withUnsafePointer(to: &priority) { prio in
            var queueInfo = VkDeviceQueueCreateInfo()
            queueInfo.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO
            queueInfo.queueFamilyIndex = family.index
            queueInfo.queueCount = 1
            queueInfo.pQueuePriorities = prio
            var features = VkPhysicalDeviceFeatures()
            features.shaderInt64 = int64 ? 1 : 0
            return withUnsafePointer(to: &queueInfo) { qp in
                withUnsafePointer(to: &features) { fp in
                    var createInfo = VkDeviceCreateInfo()
                    createInfo.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO
                    createInfo.queueCreateInfoCount = 1
                    createInfo.pQueueCreateInfos = qp
                    createInfo.pEnabledFeatures = fp
                    return fns.createDevice(physicalDevice, &createInfo, nil, &device)
                }
            }
        }
        try check(result, "vkCreateDevice")
        guard let device else { throw vulkanFailure(result, "vkCreateDevice") }
        handle = device
        do {
            vk = try DeviceFunctions(instance: fns, device: device)
        } catch {
            if let f = fns.getDeviceProcAddr(device, "vkDestroyDevice") {
                unsafeBitCast(f, to: PFN_vkDestroyDevice.self)(device, nil)
            }
            throw error
        }
        var q: VkQueue?
        vk.getDeviceQueue(device, family.index, 0, &q)
        guard let q else {
            vk.destroyDevice(device, nil)
            throw VulkanError.noComputeDevice
        }
        queue = q

        var memory = VkPhysicalDeviceMemoryProperties()
        fns.getPhysicalDeviceMemoryProperties(physicalDevice, &memory)
        memoryProperties = memory
        let types: [VkMemoryPropertyFlags] = withUnsafeBytes(of: memory.memoryTypes) { raw in
            let t = raw.bindMemory(to: VkMemoryType.self)
            return (0..<Int(memory.memoryTypeCount)).map { t[$0].propertyFlags }
        }
        let local = UInt32(VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT.rawValue)
        let visible = UInt32(VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT.rawValue)
        let coherent = UInt32(VK_MEMORY_PROPERTY_HOST_COHERENT_BIT.rawValue)
        let cached = UInt32(VK_MEMORY_PROPERTY_HOST_CACHED_BIT.rawValue)
        func first(_ required: UInt32) -> UInt32? {
            types.firstIndex { $0 & required == required }.map(UInt32.init)
        }
        guard let staging = first(visible | coherent | cached) ?? first(visible | coherent) else {
            vk.destroyDevice(device, nil)
            throw VulkanError.noSuitableMemory(purpose: "host-visible staging buffers")
        }
        stagingMemoryType = staging
        // Discrete GPUs: host-visible VRAM (resizable BAR) is slow to read from the host, so
        // use plain device-local memory and staging. Others: map device memory directly.
        let unified = info.type != .discreteGPU
        if forceStaging, let t = first(local) ?? first(visible | coherent) {
            deviceMemoryType = t
            deviceMemoryMapped = false
        } else if unified, let t = first(local | visible | coherent) ?? first(visible | coherent) {
            deviceMemoryType = t
            deviceMemoryMapped = true
        } else if let t = first(local) {
            deviceMemoryType = t
            deviceMemoryMapped = types[Int(t)] & (visible | coherent) == (visible | coherent)
        } else {
            deviceMemoryType = staging
            deviceMemoryMapped = true
        }
    }

    deinit {
        // A hung device would never go idle; what it holds is leaked instead.
        guard !isAbandoned else { return }
        _ = vk.deviceWaitIdle(handle)
        vk.destroyDevice(handle, nil)
    }

    func createFence() throws -> VkFence {
        var info = VkFenceCreateInfo()
        info.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO
        var fence: VkFence?
        try check(vk.createFence(handle, &info, nil, &fence), "vkCreateFence")
        return fence!
    }

    /// Submits one recorded command buffer and blocks until the device has finished it.
    func submitAndWait(_ commandBuffer: VkCommandBuffer, fence: VkFence) throws {
        try submitAndWait([commandBuffer], fence: fence)
    }

    /// Submits `commandBuffers` in one vkQueueSubmit (executed in order) and waits for all.
    func submitAndWait(_ commandBuffers: [VkCommandBuffer], fence: VkFence) throws {
        guard !isAbandoned else { throw VulkanError.timeout(seconds: submissionLimitSeconds) }
        var fenceVar: VkFence? = fence
        try check(vk.resetFences(handle, 1, &fenceVar), "vkResetFences")
        var cbs: [VkCommandBuffer?] = commandBuffers
        let result: VkResult = cbs.withUnsafeMutableBufferPointer { cbp in
            var submit = VkSubmitInfo()
            submit.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO
            submit.commandBufferCount = UInt32(cbp.count)
            submit.pCommandBuffers = UnsafePointer(cbp.baseAddress)
            queueLock.lock()
            defer { queueLock.unlock() }
            return vk.queueSubmit(queue, 1, &submit, fence)
        }
        try check(result, "vkQueueSubmit")
        // A lost device is reported by the driver (VK_ERROR_DEVICE_LOST, an error from `check`);
        // one that hangs without that (a runaway kernel, no watchdog) ends the wait at the limit.
        // The device may still be running the submission then, so its buffers must not go back
        // to the pool for the next caller: the device is abandoned (`isAbandoned`).
        let wait = vk.waitForFences(handle, 1, &fenceVar, VkBool32(VK_TRUE),
                                    UInt64(min(submissionLimitSeconds, 1e9) * 1e9))
        if wait == VK_TIMEOUT {
            abandoned.store(true, ordering: .releasing)
            throw VulkanError.timeout(seconds: submissionLimitSeconds)
        }
        try check(wait, "vkWaitForFences")
    }

    /// A texel-buffer view of the first `elements` elements of `buffer` (at most
    /// maxTexelBufferElements of them). Destroy with `destroyView`.
    func makeView(_ buffer: VulkanBuffer, format: VkFormat, elements: Int, elementSize: Int) throws -> VkBufferView {
        var info = VkBufferViewCreateInfo()
        info.sType = VK_STRUCTURE_TYPE_BUFFER_VIEW_CREATE_INFO
        info.buffer = buffer.handle
        info.format = format
        info.offset = 0
        info.range = VkDeviceSize(max(1, min(elements, maxTexelBufferElements)) * elementSize)
        var view: VkBufferView?
        try check(vk.createBufferView(handle, &info, nil, &view), "vkCreateBufferView")
        return view!
    }

    func destroyView(_ view: VkBufferView) {
        guard !isAbandoned else { return }
        vk.destroyBufferView(handle, view, nil)
    }

    /// Records commands with `body` into a temporary command buffer (from a pool of its own, so
    /// that callers on several threads never share one), runs them and waits.
    func runOnce(_ body: (VkCommandBuffer) throws -> Void) throws {
        let pool = try VulkanCommandPool(device: self, transient: true)
        // The pool must outlive the submission: destroying it frees the command buffer.
        try withExtendedLifetime(pool) {
            let cb = try pool.allocate()
            let fence = try createFence()
            defer { if !isAbandoned { vk.destroyFence(handle, fence, nil) } }
            var begin = VkCommandBufferBeginInfo()
            begin.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO
            begin.flags = UInt32(VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT.rawValue)
            try check(vk.beginCommandBuffer(cb, &begin), "vkBeginCommandBuffer")
            try body(cb)
            try check(vk.endCommandBuffer(cb), "vkEndCommandBuffer")
            try submitAndWait(cb, fence: fence)
        }
    }
}

/// Device limits lowered below what the driver reports, for tests.
struct VulkanLimitOverrides {
    var texelBufferElements: Int?
    var workGroupCount: (x: Int, y: Int, z: Int)?
    var submissionSeconds: Double?
}
