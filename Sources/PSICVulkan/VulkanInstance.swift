import CVulkan
import Foundation

/// The process's Vulkan instance and the physical devices it sees. Created once and shared:
/// instance creation loads every ICD, which takes tens of milliseconds.
final class VulkanInstance: @unchecked Sendable {
    let loader: VulkanLoader
    let handle: VkInstance
    let functions: InstanceFunctions
    let physicalDevices: [VkPhysicalDevice]
    let devices: [VulkanDeviceInfo]

    private static let lock = NSLock()
    nonisolated(unsafe) private static var cached: VulkanInstance?

    /// The shared instance; retried on each call until one creation succeeds, so installing a
    /// driver does not need a restart of a long-running process.
    static func shared() throws -> VulkanInstance {
        lock.lock()
        defer { lock.unlock() }
        if let cached { return cached }
        let instance = try VulkanInstance()
        cached = instance
        return instance
    }

    private init() throws {
        loader = try VulkanLoader.shared.get()
        typealias CreateInstance = PFN_vkCreateInstance
        let createInstance: CreateInstance = try loader.load(nil, "vkCreateInstance")

        var instance: VkInstance?
        let result: VkResult = "psic".withCString { appName in
            var app = VkApplicationInfo()
            app.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO
            app.pApplicationName = appName
            app.pEngineName = appName
            app.apiVersion = (1 << 22) | (1 << 12)  // VK_API_VERSION_1_1
            return withUnsafePointer(to: &app) { appPtr in
                var info = VkInstanceCreateInfo()
                info.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO
                info.pApplicationInfo = appPtr
                return createInstance(&info, nil, &instance)
            }
        }
        // The loader answers INCOMPATIBLE_DRIVER when it found no ICD at all; that is the
        // "nothing installed" case users hit, so name it rather than the raw code.
        if result == VK_ERROR_INCOMPATIBLE_DRIVER || result == VK_ERROR_INITIALIZATION_FAILED {
            throw VulkanError.noDriver(detail: "vkCreateInstance returned \(VulkanError.resultName(result.rawValue))")
        }
        try check(result, "vkCreateInstance")
        guard let instance else { throw VulkanError.noDriver(detail: "vkCreateInstance returned no instance") }
        handle = instance
        do {
            functions = try InstanceFunctions(loader: loader, instance: instance)
        } catch {
            if let destroy: PFN_vkDestroyInstance = try? loader.load(instance, "vkDestroyInstance") { destroy(instance, nil) }
            throw error
        }

        var count: UInt32 = 0
        try check(functions.enumeratePhysicalDevices(instance, &count, nil), "vkEnumeratePhysicalDevices")
        var list = [VkPhysicalDevice?](repeating: nil, count: Int(count))
        if count > 0 {
            try check(functions.enumeratePhysicalDevices(instance, &count, &list), "vkEnumeratePhysicalDevices")
        }
        physicalDevices = list.prefix(Int(count)).compactMap { $0 }
        let fns = functions
        devices = physicalDevices.enumerated().map { Self.describe($1, index: $0, functions: fns) }
        if physicalDevices.isEmpty {
            functions.destroyInstance(instance, nil)
            throw VulkanError.noDriver(detail: "the Vulkan loader reports no devices")
        }
    }

    /// Compute-capable queue family of a device, preferring one without graphics (a
    /// dedicated compute queue on discrete GPUs runs alongside the display).
    static func computeQueueFamily(_ device: VkPhysicalDevice, functions: InstanceFunctions) -> (index: UInt32, timestampBits: UInt32)? {
        var count: UInt32 = 0
        functions.getPhysicalDeviceQueueFamilyProperties(device, &count, nil)
        var families = [VkQueueFamilyProperties](repeating: VkQueueFamilyProperties(), count: Int(count))
        functions.getPhysicalDeviceQueueFamilyProperties(device, &count, &families)
        let compute = families.enumerated().filter { $0.element.queueFlags & UInt32(VK_QUEUE_COMPUTE_BIT.rawValue) != 0 }
        let dedicated = compute.first { $0.element.queueFlags & UInt32(VK_QUEUE_GRAPHICS_BIT.rawValue) == 0 }
        guard let pick = dedicated ?? compute.first else { return nil }
        return (UInt32(pick.offset), pick.element.timestampValidBits)
    }

    static func describe(_ device: VkPhysicalDevice, index: Int, functions: InstanceFunctions) -> VulkanDeviceInfo {
        var props = VkPhysicalDeviceProperties()
        functions.getPhysicalDeviceProperties(device, &props)
        var subgroup = VkPhysicalDeviceSubgroupProperties()
        subgroup.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES
        var props2 = VkPhysicalDeviceProperties2()
        props2.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2
        withUnsafeMutablePointer(to: &subgroup) { sp in
            props2.pNext = UnsafeMutableRawPointer(sp)
            functions.getPhysicalDeviceProperties2(device, &props2)
        }
        var features = VkPhysicalDeviceFeatures()
        functions.getPhysicalDeviceFeatures(device, &features)
        var memory = VkPhysicalDeviceMemoryProperties()
        functions.getPhysicalDeviceMemoryProperties(device, &memory)
        var localBytes: UInt64 = 0
        withUnsafeBytes(of: memory.memoryHeaps) { raw in
            let heaps = raw.bindMemory(to: VkMemoryHeap.self)
            for i in 0..<Int(memory.memoryHeapCount) where heaps[i].flags & UInt32(VK_MEMORY_HEAP_DEVICE_LOCAL_BIT.rawValue) != 0 {
                localBytes += heaps[i].size
            }
        }
        let name = withUnsafeBytes(of: props.deviceName) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        let v = props.apiVersion
        let queue = computeQueueFamily(device, functions: functions)
        return VulkanDeviceInfo(
            index: index, name: name, type: VulkanDeviceType(props.deviceType),
            apiVersion: "\(v >> 22).\((v >> 12) & 0x3ff).\(v & 0xfff)",
            vendorID: props.vendorID, deviceID: props.deviceID, deviceLocalBytes: localBytes,
            subgroupSize: Int(subgroup.subgroupSize),
            supportsSubgroupShuffle: subgroup.supportedOperations & UInt32(VK_SUBGROUP_FEATURE_SHUFFLE_BIT.rawValue) != 0
                && subgroup.supportedStages & UInt32(VK_SHADER_STAGE_COMPUTE_BIT.rawValue) != 0,
            maxSharedMemoryBytes: Int(props.limits.maxComputeSharedMemorySize),
            supportsInt64: features.shaderInt64 != 0,
            supportsTimestamps: (queue?.timestampBits ?? 0) > 0 && props.limits.timestampPeriod > 0,
            hasComputeQueue: queue != nil)
    }
}
