import Foundation
import PSICCPU
import PSICEngine
import PSICImage
import PSICModel
import PSICVulkan
import XCTest

/// Paths and shared objects for codec tests: the shipped model and the golden vectors.
enum CodecFixtures {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let modelURL = repo.appendingPathComponent("Models/psic-conv.safetensors")
    static let golden = repo.appendingPathComponent("Tests/Golden")

    static let model: Result<CodecModel, Error> = Result { try CodecModel(contentsOf: modelURL) }
    static let cpu = CPUBackend()
    static let vulkan: Result<VulkanBackend, Error> = Result { try VulkanBackend() }

    static func loadModel() throws -> CodecModel { try model.get() }

    /// The Vulkan backend, or a skip when this machine has no Vulkan device at all.
    static func vulkanBackend() throws -> VulkanBackend {
        switch vulkan {
        case let .success(b): return b
        case let .failure(e as VulkanError):
            switch e {
            case .loaderNotFound, .noDriver, .noComputeDevice: throw XCTSkip("no Vulkan device: \(e)")
            default: throw e
            }
        case let .failure(e): throw e
        }
    }

    static func image(_ name: String) throws -> RGBImage {
        try PNGCodec.decode([UInt8](try Data(contentsOf: golden.appendingPathComponent(name))))
    }
}

/// PSNR in dB, 99 for equal images (the tests compare finite figures).
func psnr(_ a: RGBImage, _ b: RGBImage) -> Double {
    min(a.psnr(to: b), 99)
}
