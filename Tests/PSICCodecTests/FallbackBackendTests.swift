import PSICCPU
@testable import PSICCodec
import PSICEngine
import PSICImage
import PSICVulkan
import XCTest

/// A CPU backend that, like a GPU with a small storage buffer range, refuses graphs with a
/// tensor over `maxTensorBytes`, and records what it prepared.
private final class LimitedBackend: Backend, @unchecked Sendable {
    let name = "limited"
    let maxTensorBytes: Int
    private let inner = CPUBackend(threads: 2)
    private let lock = NSLock()
    private(set) var preparedSizes: [Int] = []

    init(maxTensorBytes: Int) { self.maxTensorBytes = maxTensorBytes }

    func prepare(_ graph: Graph) throws -> PreparedGraph {
        lock.lock()
        preparedSizes.append(graph.largestTensorBytes)
        lock.unlock()
        guard graph.largestTensorBytes <= maxTensorBytes else {
            throw EngineError.backendFailure(backend: name, reason: "tensor of \(graph.largestTensorBytes) bytes over the limit")
        }
        return try inner.prepare(graph)
    }
}

final class FallbackBackendTests: XCTestCase {
    // 64x64: g_a and g_s hold 96x32x32 floats (393 KB); the integer graphs on the 4x4 latent
    // grid stay far below 100 KB.
    let limit = 100_000

    /// A codec on a backend limited to `limit` bytes per tensor with the CPU as its fallback,
    /// and a CPU-only codec to compare with.
    private func codecs(limit: Int) throws -> (LimitedBackend, ImageCodec, ImageCodec) {
        let model = try CodecFixtures.loadModel()
        let limited = LimitedBackend(maxTensorBytes: limit)
        return (limited, try ImageCodec(model: model, backend: limited, fallback: CodecFixtures.cpu),
                try ImageCodec(model: model, backend: CodecFixtures.cpu))
    }

    func testGraphsTooLargeForTheBackendRunOnTheFallback() throws {
        let image = try CodecFixtures.image("image_64x64.png")
        let (limited, codec, reference) = try codecs(limit: limit)

        let stream = try codec.encode(image)
        XCTAssertEqual(codec.fallbackRuns, 1, "the analysis graph")
        XCTAssertTrue(try stream == reference.encode(image), "the same backends' arithmetic, so the same bytes")
        let decoded = try codec.decode(stream, seeds: [0])[0]
        XCTAssertEqual(codec.fallbackRuns, 2, "and the synthesis graph")
        XCTAssertTrue(try decoded.pixels == reference.decode(stream, seeds: [0])[0].pixels)

        // The limited backend still ran the entropy model, and never saw a graph over its limit.
        XCTAssertFalse(limited.preparedSizes.isEmpty)
        XCTAssertLessThanOrEqual(limited.preparedSizes.max() ?? 0, limit)
        // A second image of the same size reuses the decision and the fallback's graphs.
        _ = try codec.encode(image)
        XCTAssertEqual(codec.fallbackRuns, 3)
        XCTAssertLessThanOrEqual(limited.preparedSizes.max() ?? 0, limit)
    }

    func testBatchSplitsBetweenBackendsAndKeepsOrder() throws {
        // 500 KB: the 64x64 image's g_a (393 KB) fits, the 128x96 one's (1.18 MB) does not.
        let small = try CodecFixtures.image("image_64x64.png"), large = try CodecFixtures.image("image_128x96.png")
        let (limited, codec, reference) = try codecs(limit: 500_000)
        // Two different large images (the second upside down), so a mix-up of order shows.
        let flipped = RGBImage(width: large.width, height: large.height, pixels: (0..<large.height).reversed().flatMap { y in
            large.pixels[y * large.width * 3..<(y + 1) * large.width * 3]
        })
        let images = [large, small, flipped]
        let streams = try codec.encodeBatch(images.map { EncodeRequest(image: $0) }).map { try $0.get() }
        XCTAssertEqual(codec.fallbackRuns, 2)
        for (i, (stream, image)) in zip(streams, images).enumerated() {
            XCTAssertTrue(try stream == reference.encode(image), "image \(i) of the batch")
        }
        XCTAssertTrue(limited.preparedSizes.contains { $0 > 100_000 }, "the small image's g_a ran on the limited backend")
        XCTAssertLessThanOrEqual(limited.preparedSizes.max() ?? 0, 500_000)
    }

    func testFitRecordStaysBoundedOverManySizes() throws {
        let large = try CodecFixtures.image("image_128x96.png")
        let (limited, codec, reference) = try codecs(limit: limit)
        codec.transforms.fitsLimit = 3
        // Each size brings several graph kinds (analysis, hyper-synthesis, entropy parameters).
        let sizes = [(64, 64), (48, 64), (64, 48), (32, 32), (64, 64)]
        for (w, h) in sizes {
            let crop = RGBImage(width: w, height: h, pixels: (0..<h).flatMap { y in large.pixels[y * large.width * 3..<(y * large.width + w) * 3] })
            XCTAssertTrue(try codec.encode(crop) == reference.encode(crop), "\(w)x\(h)")
            XCTAssertLessThanOrEqual(codec.transforms.fitsRecorded, 3)
            XCTAssertGreaterThan(codec.transforms.fitsRecorded, 0)
        }
        XCTAssertLessThanOrEqual(limited.preparedSizes.max() ?? 0, limit, "a forgotten fit is decided again, not assumed")
    }

    /// With a fallback, an image over the tile limit runs in tiles sized for the device, on the
    /// device, rather than whole on the fallback.
    func testTilesAreSizedForTheDeviceWhenThereIsAFallback() throws {
        let model = try CodecFixtures.loadModel()
        let image = try CodecFixtures.image("image_128x96.png")
        let limit = 36 * 24576  // 6 x 6-cell tiles
        let limited = LimitedBackend(maxTensorBytes: limit)
        let codec = try ImageCodec(model: model, backend: limited, fallback: CodecFixtures.cpu,
                                   tileTensorBytes: limit * 3 / 2)  // under the 8 x 8-cell image
        let stream = try codec.encode(image)
        XCTAssertGreaterThan(codec.tiledRuns, 0)
        XCTAssertEqual(codec.fallbackRuns, 0)
        XCTAssertLessThanOrEqual(limited.preparedSizes.max() ?? 0, limit)
        XCTAssertGreaterThan(psnr(try codec.decode(stream, seeds: [0])[0], image), 20)
    }

    /// A limit too small even for a tile (a 64x64 image's tiles would need 5 x 5 cells).
    func testWithoutFallbackTheBackendsErrorReachesTheCaller() throws {
        let model = try CodecFixtures.loadModel()
        let image = try CodecFixtures.image("image_64x64.png")
        let codec = try ImageCodec(model: model, backend: LimitedBackend(maxTensorBytes: limit))
        XCTAssertThrowsError(try codec.encode(image)) { error in
            guard case let EngineError.backendFailure(backend, _) = error else {
                return XCTFail("unexpected error \(error)")
            }
            XCTAssertEqual(backend, "limited")
        }
        XCTAssertEqual(codec.fallbackRuns, 0)
    }

    /// Without a fallback, an image whose graphs are too large for the backend runs them in
    /// tiles that fit it (lavapipe's 128 MiB buffer range, a GPU's): the backend never sees a
    /// tensor over its limit, and the stream decodes like the CPU's.
    func testWithoutFallbackLargeGraphsRunInTilesOnTheBackend() throws {
        let model = try CodecFixtures.loadModel()
        let image = try CodecFixtures.image("image_128x96.png")
        let limit = 36 * 24576  // tiles of 6 x 6 latent cells (g_a's and g_s's largest tensor: 24576 bytes a cell)
        let limited = LimitedBackend(maxTensorBytes: limit)
        let codec = try ImageCodec(model: model, backend: limited)
        let reference = try ImageCodec(model: model, backend: CodecFixtures.cpu)
        let stream = try codec.encode(image)
        XCTAssertGreaterThan(codec.tiledRuns, 0)
        XCTAssertEqual(codec.fallbackRuns, 0)
        XCTAssertLessThanOrEqual(limited.preparedSizes.max() ?? 0, limit)
        let a = try codec.decode(stream, seeds: [0])[0], b = try reference.decode(stream, seeds: [0])[0]
        XCTAssertLessThanOrEqual(zip(a.pixels, b.pixels).map { abs(Int($0) - Int($1)) }.max() ?? 0, 1)
        XCTAssertLessThanOrEqual(limited.preparedSizes.max() ?? 0, limit)
    }

    func testAutoWithANamedDeviceThatDoesNotExistFails() throws {
        guard VulkanBackend.unavailableReason() == nil else { throw XCTSkip("no Vulkan device") }
        XCTAssertThrowsError(try BackendHandle(choice: .auto, device: "no-such-device")) { error in
            guard case VulkanError.deviceNotFound = error else { return XCTFail("unexpected error \(error)") }
        }
    }

    func testAutoChoiceFallsBackToTheCPUOnlyForAGPU() throws {
        XCTAssertNil(try BackendHandle(choice: .cpu).fallback)
        let auto = try BackendHandle(choice: .auto)
        // On a machine with a GPU, auto takes it and keeps the CPU for oversized graphs; on
        // lavapipe or no Vulkan it is the CPU backend itself, with nothing to fall back to.
        XCTAssertEqual(auto.fallback != nil, auto.isGPU)
    }
}
