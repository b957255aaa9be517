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
                XCTAssertTrue(s.start >= 0 && s.end <= length, "inside the grid")
                // A halo on every side that is not the grid's edge (more is allowed).
                XCTAssertTrue(s.start == 0 || s.coreStart - s.start >= halo, "\(length) \(side) \(halo): \(s)")
                XCTAssertTrue(s.end == length || s.end - s.coreEnd >= halo, "\(length) \(side) \(halo): \(s)")
                XCTAssertLessThanOrEqual(s.end - s.start, side, "\(length) \(side) \(halo)")
                XCTAssertGreaterThan(s.coreEnd, s.coreStart)
            }
            // One tile length per axis (every tile shares one graph), and no more tiles than
            // cores of the most the side allows need.
            XCTAssertEqual(Set(spans.map { $0.end - $0.start }).count, 1, "\(length) \(side) \(halo)")
            XCTAssertEqual(spans.count, (length - 2 * halo + side - 2 * halo - 1) / (side - 2 * halo))
            XCTAssertEqual(plan.columns.count, 1, "3 cells fit across")
        }
        XCTAssertNil(TilePlan(height: 8, width: 8, maxSide: 8, halo: 2), "fits whole")
        XCTAssertNil(TilePlan(height: 9, width: 8, maxSide: 4, halo: 2), "no room for a core")
        XCTAssertEqual(TilePlan.maxSide(bytesLimit: Self.limit(side: 6), bytesPerCell: Double(Self.bytesPerCell)), 6)
    }

    /// The shipped model on the CPU, whole and in tiles of `tileSide` cells square, on a 128×128
    /// padded image (8 × 8 cells).
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
    //
    // Tiles of 5 × 5 cells: one cell of core beside two halos, so 4 × 4 tiles one cell apart,
    // overlapping by 4 cells, inner tiles with halos on every side.
    func testTiledAnalysisAndSynthesisEqualTheWholeImage() throws {
        let image = try paddedImage()
        let whole = try transforms(tileSide: nil), tiled = try transforms(tileSide: 5)
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
        // Every tile of a transform has one shape: one g_a and one g_s graph (h_a runs whole).
        XCTAssertEqual(tiled.idleGraphCount, 3)
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

    /// A profile's `onTile` sees every tile of every tiled network, in order, on the calling
    /// thread; a profile on an image that needs no tiles hears nothing.
    func testProfileReportsEachTile() throws {
        let model = try CodecFixtures.loadModel()
        let image = try CodecFixtures.image("image_128x96.png")
        let tiled = try ImageCodec(model: model, backend: CodecFixtures.cpu, tileTensorBytes: Self.limit(side: 6))
        var seen: [TileProgress] = []
        let profile = CodecProfile()
        profile.onTile = { seen.append($0) }
        let stream = try tiled.encode(image, profile: profile)
        let ga = seen.filter { $0.network == "g_a" }
        XCTAssertGreaterThan(ga.count, 1)
        XCTAssertEqual(ga.map(\.done), Array(1...ga.count))
        XCTAssertTrue(ga.allSatisfy { $0.total == ga.count })
        XCTAssertEqual(tiled.tiledRuns, seen.count, "one report per tile run")
        seen = []
        _ = try tiled.decode(stream, profile: profile)
        XCTAssertEqual(seen.filter { $0.network == "g_s" }.last.map { $0.done == $0.total }, true)
        seen = []
        let whole = try ImageCodec(model: model, backend: CodecFixtures.cpu)
        _ = try whole.encode(image, profile: profile)
        XCTAssertEqual(seen, [])
    }

    /// A batch mixing tiled and whole images keeps each image's result in its place: every
    /// stream and decode equals that image's alone.
    func testBatchMixingTiledAndWholeImagesKeepsOrder() throws {
        let model = try CodecFixtures.loadModel()
        let small = try CodecFixtures.image("image_64x64.png"), large = try CodecFixtures.image("image_128x96.png")
        let flipped = RGBImage(width: large.width, height: large.height, pixels: (0..<large.height).reversed().flatMap { y in
            large.pixels[y * large.width * 3..<(y + 1) * large.width * 3]
        })
        // 5 x 5-cell tiles: the 64x64 image (4 x 4 cells) runs whole, the 128x96 ones in tiles.
        let codec = try ImageCodec(model: model, backend: CodecFixtures.cpu, tileTensorBytes: Self.limit(side: 5))
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

    /// The same on Vulkan (lavapipe in CI): tiles at the grid's edges and overlapping ones,
    /// decoded within one 8-bit level of the CPU's whole-image decode of the CPU's stream.
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
    // MARK: h_a, h_s and the entropy-parameter networks

    /// Deterministic values in `-bound...bound` (a linear congruential sequence).
    private static func values(_ count: Int, bound: Int32, seed: UInt64) -> [Int32] {
        var state = seed
        return (0..<count).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int32(truncatingIfNeeded: Int64(state >> 33) % Int64(2 * bound + 1)) - bound
        }
    }

    /// z_hat of 12 × 12 z cells within z's clamp, and the transforms whole and with tiles of
    /// `side` × `side` z cells for h_s (8192 bytes a z cell: 128 int32 at 4 × 4).
    private func hyperFixture(on backend: any Backend = CodecFixtures.cpu, side: Int = 6,
                              halo: Int = ModelTransforms.hyperTileHalo) throws -> (zHat: Tensor, whole: ModelTransforms, tiled: ModelTransforms) {
        let model = try CodecFixtures.loadModel()
        let n = model.hyperSynthesis[0].inChannels
        let zHat = Tensor(shape: TensorShape(channels: n, height: 12, width: 12),
                          ints: Self.values(n * 144, bound: Int32(model.info.constants.zClamp), seed: 1))
        let whole = try ModelTransforms(model: model, backend: CodecFixtures.cpu, idleGraphBytesLimit: 1 << 30)
        let tiled = try ModelTransforms(model: model, backend: backend, idleGraphBytesLimit: 1 << 30,
                                        tileTensorBytes: side * side * 8192)
        tiled.hyperTileHalo = halo
        return (zHat, whole, tiled)
    }

    /// Level `i`'s context: the hyper features, then levels < i as random latents within the
    /// network's input bound.
    private static func context(hyper: Tensor, level i: Int, model: CodecModel) -> Tensor {
        let extra = i * model.levelChannels * hyper.shape.height * hyper.shape.width
        let bound = min(model.entropyParameters[i][0].inputBound, 4096)
        return Tensor(shape: TensorShape(channels: hyper.shape.channels + i * model.levelChannels,
                                         height: hyper.shape.height, width: hyper.shape.width),
                      ints: (hyper.ints ?? []) + values(extra, bound: bound, seed: UInt64(i + 7)))
    }

    /// Integer networks tile exactly: h_s on 12 × 12 z cells in 6 × 6 tiles (4 × 4 tiles two z
    /// cells apart), and every level's entropy-parameter network on the 48 × 48 latent grid (16 ×
    /// 16-cell tiles under the same byte limit at the last level, no halo), equal the whole grid's.
    func testTiledHyperSynthesisAndEntropyParametersEqualTheWholeGrid() throws {
        let (zHat, whole, tiled) = try hyperFixture()
        let model = whole.model
        let hyper = try whole.hyperSynthesize(zHat), tiledHyper = try tiled.hyperSynthesize(zHat)
        XCTAssertEqual(tiled.tiledRuns, 16)
        XCTAssertEqual(whole.tiledRuns, 0)
        XCTAssertEqual(hyper.shape, TensorShape(channels: 128, height: 48, width: 48))
        XCTAssertTrue(tiledHyper == hyper, "h_s in tiles")
        XCTAssertGreaterThan(Set(hyper.ints ?? []).count, 100, "a real output, not a constant one")
        for i in 0..<model.levels {
            let before = tiled.tiledRuns
            let context = Self.context(hyper: hyper, level: i, model: model)
            let a = try whole.levelParameters(level: i, context: context)
            let b = try tiled.levelParameters(level: i, context: context)
            // The largest tensor is the context (or, at level 0, the 128-channel hidden layers).
            let side = Int((Double(6 * 6 * 8192) / Double(4 * max(context.shape.channels, 128))).squareRoot())
            XCTAssertEqual(tiled.tiledRuns - before, ((48 + side - 1) / side) * ((48 + side - 1) / side), "level \(i)")
            XCTAssertTrue(a == b, "level \(i) in tiles")
        }
    }

    /// With one z cell of halo, h_s outputs near the seams miss z two cells on: the comparison
    /// above must catch that. Tiles of 7 z cells: two, 5 apart, so the first tile reaches
    /// exactly one cell past its core (h_s reads two cells ahead, one behind).
    func testAHyperSynthesisHaloTooSmallShows() throws {
        let (zHat, whole, tiled) = try hyperFixture(side: 7, halo: 1)
        let a = try whole.hyperSynthesize(zHat).ints ?? [], b = try tiled.hyperSynthesize(zHat).ints ?? []
        XCTAssertGreaterThan(tiled.tiledRuns, 0)
        XCTAssertGreaterThan(zip(a, b).filter { $0 != $1 }.count, 100)
    }

    /// h_a on a y of 8 × 8 z cells in tiles of 5 × 5 z cells (10240 bytes a z cell: y's 160
    /// floats at 4 × 4), against the whole y; one z cell of halo (4 latent cells, under h_a's
    /// reach of 7) must show.
    func testTiledHyperAnalysisEqualsTheWholeGrid() throws {
        let model = try CodecFixtures.loadModel()
        let c = model.latentChannels
        let y = Tensor(shape: TensorShape(channels: c, height: 32, width: 32),
                       floats: Self.values(c * 1024, bound: 1000, seed: 3).map { Float($0) / 200 })
        let whole = try ModelTransforms(model: model, backend: CodecFixtures.cpu, idleGraphBytesLimit: 1 << 30)
        let tiled = try ModelTransforms(model: model, backend: CodecFixtures.cpu, idleGraphBytesLimit: 1 << 30,
                                        tileTensorBytes: 5 * 5 * 10240)
        let z = try whole.hyperAnalyze(y), tz = try tiled.hyperAnalyze(y)
        XCTAssertEqual(tiled.tiledRuns, 16, "4 × 4 tiles one z cell apart")
        XCTAssertEqual(tz.shape, z.shape)
        XCTAssertLessThan(relativeError(tz, z), 1e-5)
        tiled.hyperTileHalo = 1
        XCTAssertGreaterThan(relativeError(try tiled.hyperAnalyze(y), z), 1e-3)
    }

    /// On Vulkan (lavapipe in CI) the tiled integer networks give the CPU's whole-grid results
    /// exactly: what lets `--backend vulkan` take images whose contexts pass the device's range.
    func testVulkanTiledIntegerNetworksEqualTheCPU() throws {
        let (zHat, whole, tiled) = try hyperFixture(on: try CodecFixtures.vulkanBackend())
        let hyper = try whole.hyperSynthesize(zHat)
        XCTAssertTrue(try tiled.hyperSynthesize(zHat) == hyper, "h_s")
        let last = whole.model.levels - 1
        let context = Self.context(hyper: hyper, level: last, model: whole.model)
        XCTAssertTrue(try tiled.levelParameters(level: last, context: context) == whole.levelParameters(level: last, context: context),
                      "level \(last)")
        XCTAssertEqual(tiled.tiledRuns, 16 + 9)
    }
}
