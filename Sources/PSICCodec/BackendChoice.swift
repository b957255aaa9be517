import PSICCPU
import PSICEngine
import PSICVulkan

/// Which compute backend runs the model.
public enum BackendChoice: String, CaseIterable, Sendable {
    /// A Vulkan GPU when one exists, else the CPU backend. A CPU-emulated Vulkan device
    /// (lavapipe) is chosen only when named with a device selector: the CPU backend is faster
    /// on the same cores. A named device that does not exist is an error, not the CPU.
    case auto
    case vulkan
    case cpu
}

/// An opened backend and what it is.
public struct BackendHandle: Sendable {
    public let backend: Backend
    /// True when the backend is a Vulkan device that is not a CPU emulation.
    public let isGPU: Bool
    /// Where graphs too large for `backend` run (`ImageCodec(model:backend:fallback:)`): the
    /// CPU backend when `auto` chose a GPU; none otherwise (a named backend is used or fails).
    public let fallback: Backend?

    public var name: String { backend.name }

    /// Opens the backend `choice` names. `device` selects a Vulkan device (index or name
    /// substring, as `$PSIC_VULKAN_DEVICE`).
    public init(choice: BackendChoice, device: String? = nil) throws {
        switch choice {
        case .cpu:
            backend = CPUBackend()
            isGPU = false
            fallback = nil
        case .vulkan:
            let vk = try VulkanBackend(device: device)
            backend = vk
            isGPU = vk.deviceInfo.type != .cpu
            fallback = nil
        case .auto:
            // A device named here or in $PSIC_VULKAN_DEVICE must exist; no Vulkan at all means the CPU.
            let named = device != nil || VulkanDeviceSelector.fromEnvironment != .automatic
            let vk: VulkanBackend?
            do {
                vk = try VulkanBackend(device: device)
            } catch let error as VulkanError {
                if case .deviceNotFound = error { throw error }
                vk = nil
            } catch let error as EngineError where error.isOutOfMemory {
                // A device whose memory is taken by other processes: the CPU can still do the work.
                vk = nil
            }
            if let vk, named || vk.deviceInfo.type != .cpu {
                backend = vk
                isGPU = vk.deviceInfo.type != .cpu
                fallback = CPUBackend()
            } else {
                backend = CPUBackend()
                isGPU = false
                fallback = nil
            }
        }
    }
}
