import CVulkan
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The Vulkan loader library, opened with dlopen so that a missing libvulkan is an error
/// we can report (and fall back from) instead of a failure to start the program.
final class VulkanLoader: @unchecked Sendable {
    let getInstanceProcAddr: PFN_vkGetInstanceProcAddr

    #if os(macOS)
    static let candidates = ["libvulkan.1.dylib", "libvulkan.dylib", "libMoltenVK.dylib"]
    #else
    static let candidates = ["libvulkan.so.1", "libvulkan.so"]
    #endif

    private init(getInstanceProcAddr: PFN_vkGetInstanceProcAddr) {
        self.getInstanceProcAddr = getInstanceProcAddr
    }

    /// Opened once per process; the library stays loaded for the life of the process.
    static let shared: Result<VulkanLoader, VulkanError> = {
        for name in candidates {
            guard let handle = dlopen(name, RTLD_NOW | RTLD_LOCAL) else { continue }
            guard let sym = dlsym(handle, "vkGetInstanceProcAddr") else { continue }
            return .success(VulkanLoader(getInstanceProcAddr: unsafeBitCast(sym, to: PFN_vkGetInstanceProcAddr.self)))
        }
        return .failure(.loaderNotFound(tried: candidates))
    }()

    /// Looks up a global or instance-level entry point (`instance` nil for global ones).
    func load<T>(_ instance: VkInstance?, _ name: String) throws -> T {
        guard let f = getInstanceProcAddr(instance, name) else { throw VulkanError.missingFunction(name) }
        return unsafeBitCast(f, to: T.self)
    }
}
