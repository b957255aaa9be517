import PSICCPU
@testable import PSICCodec
import PSICEngine
import PSICImage
import PSICModel
import XCTest

/// Large images run g_a and g_s in tiles (`TilePlan`); the joined result must be the whole
/// image's, and a halo too small must show.
final class TiledTransformsTests: XCTestCase {
    // Both transforms' largest tensor is 96 floats × 8 × 8 per latent cell (g_a's first layer
    // output, g_s's last hidden layer): 24576 bytes a cell.
    static let bytesPerCell = 24576

    /// A limit whose tiles are `side` cells square, halo included.
    static func limit(side: Int) -> Int { side * side * bytesPerCell }

    func testSpansPartitionTheGridAndStayWithinTheSide() throws {
        for (length, side, halo) in [(8, 6, 2), (9, 6, 2), (256, 147, 2), (5, 5, 2), (100, 7, 3), (13, 5, 1)] {
            guard let plan = TilePlan(height: length, width: 3, maxSide: side, halo: halo) else {
                XCTAssertLessThanOrEqual(length, side, "only a grid that fits is left whole")
                continue
            }
            let spans = plan.rows
            XCTAssertEqual(spans.first?.coreStart, 0)
            XCTAssertEqual(spans.last?.coreEnd, length)
            for (a, b) in zip(spans, spans.dropFirst()) { XCTAssertEqual(a.coreEnd, b.coreStart, "cores touch") }
            for s in spans {
                XCTAssertEqual(s.start, max(0, s.coreStart - halo))
                XCTAssertEqual(s.end, min(length, s.coreEnd + halo))
                XCTAssertLessThanOrEqual(s.end - s.start, side, "\(length) \(side) \(halo)")
                XCTAssertGreaterThan(s.coreEnd, s.coreStart)
            }
            // Equal cores but the last: at most two tile sizes per axis inside the grid.
            XCTAssertLessThanOrEqual(Set(spans.dropLast().map { $0.coreEnd - $0.coreStart }).count, 1)
            XCTAssertEqual(plan.columns.count, 1, "3 cells fit across")
        }
        XCTAssertNil(TilePlan(height: 8, width: 8, maxSide: 8, halo: 2), "fits whole")
        XCTAssertNil(TilePlan(height: 9, width: 8, maxSide: 4, halo: 2), "no room for a core")
        XCTAssertEqual(TilePlan.maxSide(bytesLimit: Self.limit(side: 6), bytesPerCell: Double(Self.bytesPerCell)), 6)
    }

    /// The shipped model on the CPU, whole and in tiles of 6 × 6 cells (2 × 2 cells kept), on a
    /// 128×128 padded image (8 × 8 cells: 16 tiles).
    private func transforms(tileSide: Int?, halo: Int = ModelTransforms.tileHalo) throws -> ModelTransforms {
        let t = try ModelTransforms(model: try CodecFixtures.loadModel(), backend: CodecFixtures.cpu,
                                idleGraphBytesLimit: 1 << 30, tileTensorBytes: tileSide.map(Self.limit) ?? Int.max)
        t.tileHalo = halo
        return t
    }

    private func paddedImage() throws -> (pixels: [Float], height: Int, width: Int) {
        let image = try CodecFixtures.image("image_128x96.png")
        return (image.planarFloats(paddedWidth: 128, paddedHeight: 128), 128, 128)
    }

    /// Largest difference relative to the largest magnitude.
    private func relativeError(_ a: Tensor, _ b: Tensor) -> Float {
        let x = a.floats ?? [], y = b.floats ?? []
        let peak = x.map(abs).max() ?? 0
        return zip(x, y).map { abs($0 - $1) }.max().map { $0 / max(peak, 1e-30) } ?? .infinity
    }

    // Tolerance: float32 sums of up to 96 × 25 products per output, in a different order when the
    // tensor's width changes (oneDNN's blocking), drift by a few ulps per layer; 1e-5 of the peak
    // is ~100× that and ~1000× below what a wrong halo gives (next test).
    func testTiledAnalysisAndSynthesisEqualTheWholeImage() throws {
        let image = try paddedImage()
        let whole = try transforms(tileSide: nil), tiled = try transforms(tileSide: 6)
        let (y, z) = try whole.analyze(image.pixels, height: 128, width: 128)
        let (ty, tz) = try tiled.analyze(image.pixels, height: 128, width: 128)
        XCTAssertEqual(tiled.tiledRuns, 16)
        XCTAssertEqual(whole.tiledRuns, 0)
        XCTAssertEqual(ty.shape, y.shape)
        XCTAssertEqual(tz.shape, z.shape)
        XCTAssertLessThan(relativeError(ty, y), 1e-5)
        XCTAssertLessThan(relativeError(tz, z), 1e-5)

        // g_s on integer latents (units of 1/16), as the decoder gives them.
        let latents = Tensor(shape: y.shape, ints: (y.floats ?? []).map { Int32(($0 * 16).rounded()) })
        let x = try whole.synthesize(latents), tx = try tiled.synthesize(latents)
        XCTAssertEqual(tiled.tiledRuns, 32)
        XCTAssertEqual(tx.shape, x.shape)
        XCTAssertLessThan(relativeError(tx, x), 1e-5)
    }

    /// With one cell of halo g_s's outputs near tile seams miss latents two cells away (and
    /// g_a's miss pixels 30 away): the comparison above must catch that.
    func testAHaloTooSmallShows() throws {
        let image = try paddedImage()
        let whole = try transforms(tileSide: nil), tiled = try transforms(tileSide: 4, halo: 1)
        let (y, _) = try whole.analyze(image.pixels, height: 128, width: 128)
        let (ty, _) = try tiled.analyze(image.pixels, height: 128, width: 128)
        XCTAssertGreaterThan(relativeError(ty, y), 1e-3)
        let latents = Tensor(shape: y.shape, ints: (y.floats ?? []).map { Int32(($0 * 16).rounded()) })
        XCTAssertGreaterThan(relativeError(try tiled.synthesize(latents), try whole.synthesize(latents)), 1e-3)
    }

    /// End to end: a codec with small tiles decodes the same image (to within one 8-bit level)
    /// as one without, from either's stream.
    func testCodecWithTilesDecodesLikeTheWholeImage() throws {
        let model = try CodecFixtures.loadModel()
        let image = try CodecFixtures.image("image_128x96.png")
        let whole = try ImageCodec(model: model, backend: CodecFixtures.cpu)
        let tiled = try ImageCodec(model: model, backend: CodecFixtures.cpu, tileTensorBytes: Self.limit(side: 6))
        let stream = try tiled.encode(image)
        XCTAssertGreaterThan(tiled.tiledRuns, 0)
        let a = try tiled.decode(stream, seeds: [0])[0], b = try whole.decode(stream, seeds: [0])[0]
        XCTAssertEqual(a.width, image.width)
        XCTAssertEqual(a.height, image.height)
        XCTAssertLessThanOrEqual(zip(a.pixels, b.pixels).map { abs(Int($0) - Int($1)) }.max() ?? 0, 1)
        XCTAssertGreaterThan(psnr(a, image), 20, "a real decode, not a blank one")
    }

    /// A batch mixing tiled and whole images keeps each image's result in its place: every
    /// stream and decode equals that image's alone.
    func testBatchMixingTiledAndWholeImagesKeepsOrder() throws {
        let model = try CodecFixtures.loadModel()
        let small = try CodecFixtures.image("image_64x64.png"), large = try CodecFixtures.image("image_128x96.png")
        let flipped = RGBImage(width: large.width, height: large.height, pixels: (0..<large.height).reversed().flatMap { y in
            large.pixels[y * large.width * 3..<(y + 1) * large.width * 3]
        })
        // 6 x 6-cell tiles: the 64x64 image (4 x 4 cells) runs whole, the 128x96 ones in tiles.
        let codec = try ImageCodec(model: model, backend: CodecFixtures.cpu, tileTensorBytes: Self.limit(side: 6))
        let images = [large, small, flipped]
        let streams = try codec.encodeBatch(images.map { EncodeRequest(image: $0) }).map { try $0.get() }
        XCTAssertEqual(codec.tiledRuns, 32, "16 g_a tiles for each large image")
        for (i, (stream, image)) in zip(streams, images).enumerated() {
            XCTAssertTrue(try stream == codec.encode(image), "image \(i) of the batch")
        }
        let decoded = try codec.decodeBatch(streams.map { DecodeRequest(stream: $0, seeds: [0]) }).map { try $0.get()[0] }
        for (i, (image, stream)) in zip(decoded, streams).enumerated() {
            XCTAssertEqual(image, try codec.decode(stream, seeds: [0])[0], "decode \(i) of the batch")
        }
    }

    /// The same on Vulkan (lavapipe in CI): tiles of every size class the plan makes, decoded
    /// within one 8-bit level of the CPU's whole-image decode of the CPU's stream.
    func testVulkanTilesDecodeLikeTheCPU() throws {
        let model = try CodecFixtures.loadModel()
        let image = try CodecFixtures.image("image_128x96.png")
        let vulkan = try ImageCodec(model: model, backend: try CodecFixtures.vulkanBackend(),
                                    tileTensorBytes: Self.limit(side: 7))
        let cpu = try ImageCodec(model: model, backend: CodecFixtures.cpu)
        let stream = try cpu.encode(image)
        let a = try vulkan.decode(stream, seeds: [0])[0], b = try cpu.decode(stream, seeds: [0])[0]
        XCTAssertGreaterThan(vulkan.tiledRuns, 0)
        XCTAssertLessThanOrEqual(zip(a.pixels, b.pixels).map { abs(Int($0) - Int($1)) }.max() ?? 0, 1)
        // The Vulkan encoder's tiled stream decodes to the same image on the CPU.
        let vs = try vulkan.encode(image)
        let c = try cpu.decode(vs, seeds: [0])[0], d = try vulkan.decode(vs, seeds: [0])[0]
        XCTAssertLessThanOrEqual(zip(c.pixels, d.pixels).map { abs(Int($0) - Int($1)) }.max() ?? 0, 1)
        XCTAssertGreaterThan(psnr(c, image), 20)
    }
}
