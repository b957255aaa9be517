import PSICCPU
import PSICEngine
import PSICVulkan

/// Which compute backend runs the model.
public enum BackendChoice: String, CaseIterable, Sendable {
    /// A Vulkan GPU when one exists, else the CPU backend. A CPU-emulated Vulkan device
    /// (lavapipe) is chosen only when named with a device selector: the CPU backend is faster
    /// on the same cores.
    case auto
    case vulkan
    case cpu
}

/// An opened backend and what it is.
public struct BackendHandle: Sendable {
    public let backend: Backend
    /// True when the backend is a Vulkan device that is not a CPU emulation.
    public let isGPU: Bool

    public var name: String { backend.name }

    /// Opens the backend `choice` names. `device` selects a Vulkan device (index or name
    /// substring, as `$PSIC_VULKAN_DEVICE`).
    public init(choice: BackendChoice, device: String? = nil) throws {
        switch choice {
        case .cpu:
            backend = CPUBackend()
            isGPU = false
        case .vulkan:
            let vk = try VulkanBackend(device: device)
            backend = vk
            isGPU = vk.deviceInfo.type != .cpu
        case .auto:
            if let vk = try? VulkanBackend(device: device), device != nil || vk.deviceInfo.type != .cpu {
                backend = vk
                isGPU = true
            } else {
                backend = CPUBackend()
                isGPU = false
            }
        }
    }
}
