import Foundation
import CVulkan

/// Kind of a Vulkan physical device, in the order the backend prefers them.
public enum VulkanDeviceType: Int, Sendable, Comparable, CustomStringConvertible {
    case discreteGPU = 0, integratedGPU, virtualGPU, cpu, other

    init(_ t: VkPhysicalDeviceType) {
        switch t {
        case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: self = .discreteGPU
        case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: self = .integratedGPU
        case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: self = .virtualGPU
        case VK_PHYSICAL_DEVICE_TYPE_CPU: self = .cpu
        default: self = .other
        }
    }

    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }

    public var description: String {
        switch self {
        case .discreteGPU: return "discrete GPU"
        case .integratedGPU: return "integrated GPU"
        case .virtualGPU: return "virtual GPU"
        case .cpu: return "CPU"
        case .other: return "other"
        }
    }
}

/// What `psic devices` shows about one Vulkan device.
public struct VulkanDeviceInfo: Sendable, CustomStringConvertible {
    /// Index in the loader's enumeration order; `PSIC_VULKAN_DEVICE=<index>` selects it.
    public let index: Int
    public let name: String
    public let type: VulkanDeviceType
    /// Vulkan version the driver implements, e.g. "1.3.230".
    public let apiVersion: String
    public let vendorID: UInt32
    public let deviceID: UInt32
    /// Total size of the device-local memory heaps.
    public let deviceLocalBytes: UInt64
    public let subgroupSize: Int
    /// Subgroup shuffles in compute shaders (conv2d_subgroup needs them).
    public let supportsSubgroupShuffle: Bool
    public let maxSharedMemoryBytes: Int
    /// 64-bit integers in shaders; the integer kernels need them.
    public let supportsInt64: Bool
    /// Timestamps on the compute queue; per-kernel timings need them.
    public let supportsTimestamps: Bool
    /// Whether a compute queue exists (devices without one are listed but never selected).
    public let hasComputeQueue: Bool

    public var description: String {
        let mib = deviceLocalBytes / (1 << 20)
        return "[\(index)] \(name) (\(type), Vulkan \(apiVersion), \(mib) MiB, subgroup \(subgroupSize)"
            + (supportsInt64 ? "" : ", no int64") + (supportsTimestamps ? "" : ", no timestamps")
            + (hasComputeQueue ? "" : ", no compute queue") + ")"
    }
}

/// Which device a backend should use.
public enum VulkanDeviceSelector: Sendable, Equatable {
    /// Discrete GPU, then integrated, virtual, CPU (lavapipe); ties go to the lowest index.
    case automatic
    case index(Int)
    /// Case-insensitive substring of the device name.
    case name(String)

    /// Parses "2" as an index, anything else as a name; empty or nil means automatic.
    public init(_ string: String?) {
        guard let s = string?.trimmingCharacters(in: .whitespaces), !s.isEmpty else { self = .automatic; return }
        if let i = Int(s) { self = .index(i) } else { self = .name(s) }
    }

    /// `PSIC_VULKAN_DEVICE` from the environment.
    public static var fromEnvironment: VulkanDeviceSelector {
        VulkanDeviceSelector(ProcessInfo.processInfo.environment["PSIC_VULKAN_DEVICE"])
    }

    func pick(from devices: [VulkanDeviceInfo]) throws -> VulkanDeviceInfo {
        let usable = devices.filter(\.hasComputeQueue)
        let found: VulkanDeviceInfo?
        switch self {
        case .automatic:
            found = usable.min { ($0.type, $0.index) < ($1.type, $1.index) }
        case let .index(i):
            found = usable.first { $0.index == i }
        case let .name(n):
            found = usable.first { $0.name.lowercased().contains(n.lowercased()) }
        }
        guard let found else {
            if case .automatic = self { throw VulkanError.noComputeDevice }
            let sel: String
            switch self {
            case let .index(i): sel = String(i)
            case let .name(n): sel = n
            case .automatic: sel = "automatic"
            }
            throw VulkanError.deviceNotFound(selector: sel, available: devices.map(\.description))
        }
        return found
    }
}

