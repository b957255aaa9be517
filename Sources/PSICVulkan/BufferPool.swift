import CVulkan
import Foundation
import PSICEngine

/// A Vulkan buffer with its own memory allocation. Returned to its pool when released.
final class VulkanBuffer: @unchecked Sendable {
    enum Kind: Hashable { case device, staging }

    let device: VulkanDevice
    let kind: Kind
    let handle: VkBuffer
    let memory: VkDeviceMemory
    /// Capacity in bytes (at least what was asked for; pooled sizes are rounded up).
    let size: Int
    /// Host address of the contents when the memory is mapped, else nil (device-only VRAM).
    let mapped: UnsafeMutableRawPointer?

    init(device: VulkanDevice, kind: Kind, size: Int) throws {
        self.device = device
        self.kind = kind
        self.size = size
        let vk = device.vk
        var info = VkBufferCreateInfo()
        info.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO
        info.size = VkDeviceSize(size)
        info.usage = UInt32(VK_BUFFER_USAGE_STORAGE_BUFFER_BIT.rawValue | VK_BUFFER_USAGE_TRANSFER_SRC_BIT.rawValue
                            | VK_BUFFER_USAGE_TRANSFER_DST_BIT.rawValue
                            | VK_BUFFER_USAGE_UNIFORM_TEXEL_BUFFER_BIT.rawValue)
        info.sharingMode = VK_SHARING_MODE_EXCLUSIVE
        var buffer: VkBuffer?
        let created = vk.createBuffer(device.handle, &info, nil, &buffer)
        // Drivers answer a buffer too large for them with an out-of-memory result too (lavapipe:
        // over 4 GiB), which `check` makes `EngineError.outOfDeviceMemory`.
        try check(created, "vkCreateBuffer", bytes: size)
        var requirements = VkMemoryRequirements()
        vk.getBufferMemoryRequirements(device.handle, buffer, &requirements)
        let type = kind == .device ? device.deviceMemoryType : device.stagingMemoryType
        guard requirements.memoryTypeBits & (1 << type) != 0 else {
            vk.destroyBuffer(device.handle, buffer, nil)
            throw VulkanError.noSuitableMemory(purpose: kind == .device ? "tensor buffers" : "staging buffers")
        }
        var alloc = VkMemoryAllocateInfo()
        alloc.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO
        alloc.allocationSize = requirements.size
        alloc.memoryTypeIndex = type
        var memory: VkDeviceMemory?
        let r = vk.allocateMemory(device.handle, &alloc, nil, &memory)
        guard r == VK_SUCCESS, let memory else {
            vk.destroyBuffer(device.handle, buffer, nil)
            throw vulkanFailure(r, "vkAllocateMemory", bytes: size)
        }
        do {
            try check(vk.bindBufferMemory(device.handle, buffer, memory, 0), "vkBindBufferMemory")
            if kind == .staging || device.deviceMemoryMapped {
                var ptr: UnsafeMutableRawPointer?
                try check(vk.mapMemory(device.handle, memory, 0, VkDeviceSize(VK_WHOLE_SIZE), 0, &ptr), "vkMapMemory")
                mapped = ptr
            } else {
                mapped = nil
            }
        } catch {
            vk.destroyBuffer(device.handle, buffer, nil)
            vk.freeMemory(device.handle, memory, nil)
            throw error
        }
        self.handle = buffer!
        self.memory = memory
    }

    deinit {
        guard !device.isAbandoned else { return }  // the hung device may still use it
        // Freeing mapped memory unmaps it implicitly.
        device.vk.destroyBuffer(device.handle, handle, nil)
        device.vk.freeMemory(device.handle, memory, nil)
    }
}

/// Buffers recycled across prepared graphs and images: allocating device memory costs far
/// more than a kernel on small images, and a codec processes many same-sized images.
///
/// Sizes are rounded up to size classes (multiples of an eighth of the power of two at or
/// above the size, at least 64 KiB) so a buffer freed by one image fits the next of a similar
/// size: four classes per octave, wasting up to 25 % just above a power of two and under
/// 12.5 % from three quarters of one up. `VulkanPreparedGraph.memoryBytes` counts the sizes
/// asked for, not the rounded ones.
final class BufferPool: @unchecked Sendable {
    let device: VulkanDevice
    /// Idle bytes kept for reuse; beyond this the least recently released buffers are freed.
    let idleLimit: Int

    /// Creates a buffer (the device's allocator; tests substitute one that runs out).
    typealias Allocate = (_ device: VulkanDevice, _ kind: VulkanBuffer.Kind, _ size: Int) throws -> VulkanBuffer

    private let lock = NSLock()
    private var idle: [VulkanBuffer] = []
    private var idleBytes = 0
    private let allocate: Allocate

    init(device: VulkanDevice, idleLimit: Int = 1 << 30,
         allocate: @escaping Allocate = { try VulkanBuffer(device: $0, kind: $1, size: $2) }) {
        self.device = device
        self.idleLimit = idleLimit
        self.allocate = allocate
    }

    static func sizeClass(_ bytes: Int) -> Int {
        let minimum = 64 << 10
        guard bytes > minimum else { return minimum }
        let top = Int.bitWidth - (bytes - 1).leadingZeroBitCount  // 2^top >= bytes
        let step = 1 << max(top - 3, 0)
        return (bytes + step - 1) / step * step
    }

    /// A buffer of at least `bytes`, reused when an idle one of the same size class exists. When
    /// the device is out of memory while idle buffers of other sizes hold some, frees them and
    /// tries once more (a large photo after a batch of other sizes).
    func acquire(bytes: Int, kind: VulkanBuffer.Kind) throws -> VulkanBuffer {
        let size = Self.sizeClass(max(bytes, 4))
        lock.lock()
        if let i = idle.lastIndex(where: { $0.kind == kind && $0.size == size }) {
            let b = idle.remove(at: i)
            idleBytes -= b.size
            lock.unlock()
            return b
        }
        lock.unlock()
        do {
            return try allocate(device, kind, size)
        } catch let error as EngineError where error.isOutOfMemory && freeIdle() > 0 {
            return try allocate(device, kind, size)
        }
    }

    /// Frees every idle buffer; returns how many there were.
    private func freeIdle() -> Int {
        lock.lock()
        let freed = idle
        idle = []
        idleBytes = 0
        lock.unlock()
        return freed.count  // destroyed here, outside the lock
    }

    /// Hands a buffer back for reuse. The caller must be done with it on the device too.
    func release(_ buffer: VulkanBuffer) {
        lock.lock()
        defer { lock.unlock() }
        idle.append(buffer)
        idleBytes += buffer.size
        while idleBytes > idleLimit, !idle.isEmpty {
            idleBytes -= idle.removeFirst().size
        }
    }

    /// Number of idle buffers (for tests).
    var idleCount: Int {
        lock.lock()
        defer { lock.unlock() }
        return idle.count
    }
}
