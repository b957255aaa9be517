import CVulkan

/// A command pool and the primary command buffers allocated from it.
///
/// Vulkan requires a pool to be externally synchronised for allocation, freeing and for
/// *recording* into any of its command buffers. One pool shared by the device would need a
/// lock held across every recording; instead each prepared graph owns a pool (its own lock
/// already serialises its recordings) and one-off work (`VulkanDevice.runOnce`) makes a
/// transient one. Not thread-safe: the owner serialises its use.
final class VulkanCommandPool {
    let device: VulkanDevice
    let handle: VkCommandPool

    /// `transient`: the pool's buffers are short-lived (a hint to the driver).
    init(device: VulkanDevice, transient: Bool = false) throws {
        self.device = device
        var info = VkCommandPoolCreateInfo()
        info.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO
        info.flags = transient ? UInt32(VK_COMMAND_POOL_CREATE_TRANSIENT_BIT.rawValue) : 0
        info.queueFamilyIndex = device.queueFamily
        var pool: VkCommandPool?
        try check(device.vk.createCommandPool(device.handle, &info, nil, &pool), "vkCreateCommandPool")
        handle = pool!
    }

    /// Destroying the pool frees its command buffers; the owner has waited for their submissions.
    deinit {
        guard !device.isAbandoned else { return }  // the hung device may still run its buffers
        device.vk.destroyCommandPool(device.handle, handle, nil)
    }

    /// A primary command buffer, freed with the pool (or by `free`).
    func allocate() throws -> VkCommandBuffer {
        var info = VkCommandBufferAllocateInfo()
        info.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO
        info.commandPool = handle
        info.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY
        info.commandBufferCount = 1
        var buffer: VkCommandBuffer?
        try check(device.vk.allocateCommandBuffers(device.handle, &info, &buffer), "vkAllocateCommandBuffers")
        return buffer!
    }

    /// Gives back a command buffer that will not be submitted (a recording that failed).
    func free(_ buffer: VkCommandBuffer) {
        var list: VkCommandBuffer? = buffer
        device.vk.freeCommandBuffers(device.handle, handle, 1, &list)
    }
}
