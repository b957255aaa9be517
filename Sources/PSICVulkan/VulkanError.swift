import CVulkan
import PSICEngine

/// Why the Vulkan backend could not be created or could not run a graph.
public enum VulkanError: Error, Sendable, Equatable, CustomStringConvertible {
    /// No Vulkan loader library could be opened.
    case loaderNotFound(tried: [String])
    /// The loader found no installable client driver (vkCreateInstance returned
    /// VK_ERROR_INCOMPATIBLE_DRIVER), or the driver has no device at all.
    case noDriver(detail: String)
    /// Drivers exist but none of their devices can run compute work.
    case noComputeDevice
    /// `PSIC_VULKAN_DEVICE` or the `device:` argument matched no device.
    case deviceNotFound(selector: String, available: [String])
    /// A Vulkan entry point the backend needs is missing from the loader or driver.
    case missingFunction(String)
    /// A Vulkan call failed.
    case callFailed(function: String, result: Int32)
    /// No memory type satisfies what a buffer needs.
    case noSuitableMemory(purpose: String)
    /// The device lacks a feature a kernel needs (e.g. 64-bit integers for requantisation).
    case unsupportedFeature(feature: String, device: String)
    /// The graph holds an op this backend has no kernel for, or a shape the kernels cannot handle.
    case unsupportedOp(node: String, reason: String)
    /// A submission did not finish within the limit (a hung device): the backend no longer runs anything.
    case timeout(seconds: Double)

    static let installHint = "install a Vulkan driver: on Debian/Ubuntu `apt install libvulkan1 mesa-vulkan-drivers` "
        + "(lavapipe, a CPU implementation) or your GPU vendor's driver (e.g. nvidia-driver); "
        + "or run with the CPU backend"

    public var description: String {
        switch self {
        case let .loaderNotFound(tried):
            return "Vulkan loader not found (tried \(tried.joined(separator: ", "))); " + Self.installHint
        case let .noDriver(detail):
            return "no Vulkan driver (ICD) available: \(detail); " + Self.installHint
        case .noComputeDevice:
            return "no Vulkan device with a compute queue; " + Self.installHint
        case let .deviceNotFound(selector, available):
            return "no Vulkan device matches '\(selector)'; available: "
                + (available.isEmpty ? "none" : available.joined(separator: "; "))
        case let .missingFunction(name):
            return "Vulkan function \(name) is not provided by the loader/driver (Vulkan 1.1 or newer is required)"
        case let .callFailed(function, result):
            return "\(function) failed: \(VulkanError.resultName(result))"
        case let .noSuitableMemory(purpose):
            return "no Vulkan memory type suitable for \(purpose)"
        case let .unsupportedFeature(feature, device):
            return "Vulkan device '\(device)' lacks \(feature)"
        case let .unsupportedOp(node, reason):
            return "node '\(node)' cannot run on Vulkan: \(reason)"
        case let .timeout(seconds):
            return "the Vulkan device did not finish its work within \(Int(seconds)) s (hung); it is no longer used "
                + "by this process: restart it, or use the CPU backend"
        }
    }

    static func resultName(_ r: Int32) -> String {
        switch VkResult(r) {
        case VK_ERROR_OUT_OF_HOST_MEMORY: return "VK_ERROR_OUT_OF_HOST_MEMORY"
        case VK_ERROR_OUT_OF_DEVICE_MEMORY: return "VK_ERROR_OUT_OF_DEVICE_MEMORY"
        case VK_ERROR_INITIALIZATION_FAILED: return "VK_ERROR_INITIALIZATION_FAILED"
        case VK_ERROR_DEVICE_LOST: return "VK_ERROR_DEVICE_LOST"
        case VK_ERROR_MEMORY_MAP_FAILED: return "VK_ERROR_MEMORY_MAP_FAILED"
        case VK_ERROR_LAYER_NOT_PRESENT: return "VK_ERROR_LAYER_NOT_PRESENT"
        case VK_ERROR_EXTENSION_NOT_PRESENT: return "VK_ERROR_EXTENSION_NOT_PRESENT"
        case VK_ERROR_FEATURE_NOT_PRESENT: return "VK_ERROR_FEATURE_NOT_PRESENT"
        case VK_ERROR_INCOMPATIBLE_DRIVER: return "VK_ERROR_INCOMPATIBLE_DRIVER"
        case VK_ERROR_TOO_MANY_OBJECTS: return "VK_ERROR_TOO_MANY_OBJECTS"
        case VK_TIMEOUT: return "VK_TIMEOUT"
        default: return "VkResult \(r)"
        }
    }
}

/// Throws unless `result` is VK_SUCCESS: `EngineError.outOfDeviceMemory` when the driver ran
/// out of device or host memory (callers such as the codec's graph pool free memory and retry
/// on it, and the server answers 503), else `VulkanError.callFailed`. `bytes` is the size the
/// call asked for, when it asked for memory.
@inline(__always)
func check(_ result: VkResult, _ function: String, bytes: Int? = nil) throws {
    guard result == VK_SUCCESS else { throw vulkanFailure(result, function, bytes: bytes) }
}

/// The error `check` throws for a failed call.
func vulkanFailure(_ result: VkResult, _ function: String, bytes: Int? = nil) -> any Error {
    if result == VK_ERROR_OUT_OF_DEVICE_MEMORY || result == VK_ERROR_OUT_OF_HOST_MEMORY {
        return EngineError.outOfDeviceMemory(backend: "vulkan", bytes: bytes, call: function)
    }
    return VulkanError.callFailed(function: function, result: result.rawValue)
}
