import Foundation
import PSICEngine
@testable import PSICEntropy
import PSICImage
import PSICModel
import XCTest
@testable import PSICCodec

/// Encode/decode at every level, bit-exact latents across backends, truncation, and refusal of
/// bad streams.
final class CodecRoundTripTests: XCTestCase {
    func testRoundTripEveryLevelCPU() throws {
        let codec = try ImageCodec(model: try CodecFixtures.loadModel(), backend: CodecFixtures.cpu)
        let image = try CodecFixtures.image("image_128x96.png")
        var previousBytes = 0
        for l in 1...codec.model.levels {
            let stream = try codec.encode(image, levels: l)
            XCTAssertGreaterThan(stream.count, previousBytes, "level \(l) stream is not larger than level \(l - 1)'s")
            previousBytes = stream.count
            let decoded = try codec.decode(stream)[0]
            XCTAssertEqual(decoded.width, image.width)
            XCTAssertEqual(decoded.height, image.height)
        }
        // The full-level decode is the faithful one: it must beat a flat grey image by a wide margin.
        let full = try codec.decode(try codec.encode(image))[0]
        let grey = RGBImage(width: image.width, height: image.height, pixels: [UInt8](repeating: 128, count: image.pixels.count))
        XCTAssertGreaterThan(psnr(full, image), psnr(grey, image) + 6)
    }

    /// A stream decodes to the same integer latents on every backend, whichever backend encoded it,
    /// at every level and for sampled levels too.
    func testCrossBackendBitExact() throws {
        let model = try CodecFixtures.loadModel()
        let vk = try CodecFixtures.vulkanBackend()
        let cpu = try ImageCodec(model: model, backend: CodecFixtures.cpu)
        let gpu = try ImageCodec(model: model, backend: vk)
        for name in ["image_64x64.png", "image_128x96.png"] {
            let image = try CodecFixtures.image(name)
            for (encoder, label) in [(cpu, "cpu"), (gpu, "vulkan")] {
                let stream = try encoder.encode(image)
                for l in 1...model.levels {
                    let a = try cpu.decodeLatents(stream, levels: l, seeds: [3, 4])
                    let b = try gpu.decodeLatents(stream, levels: l, seeds: [3, 4])
                    XCTAssertEqual(a.map(\.ints), b.map(\.ints), "\(name) encoded on \(label), level \(l): latents differ")
                    let meanA = try cpu.decodeLatents(stream, levels: l, seeds: [3], details: .mean)
                    let meanB = try gpu.decodeLatents(stream, levels: l, seeds: [3], details: .mean)
                    XCTAssertEqual(meanA.map(\.ints), meanB.map(\.ints), "\(name) encoded on \(label), level \(l): mean latents differ")
                    let wideA = try cpu.decodeLatents(stream, levels: l, seeds: [3], detailSpread: 5)
                    let wideB = try gpu.decodeLatents(stream, levels: l, seeds: [3], detailSpread: 5)
                    XCTAssertEqual(wideA.map(\.ints), wideB.map(\.ints), "\(name) encoded on \(label), level \(l): widened latents differ")
                    let calA = try cpu.decodeLatents(stream, levels: l, seeds: [3], details: .calibrated)
                    let calB = try gpu.decodeLatents(stream, levels: l, seeds: [3], details: .calibrated)
                    XCTAssertEqual(calA.map(\.ints), calB.map(\.ints), "\(name) encoded on \(label), level \(l): calibrated latents differ")
                }
            }
        }
    }

    func testTruncationEqualsDecodingFewerLevels() throws {
        let codec = try ImageCodec(model: try CodecFixtures.loadModel(), backend: CodecFixtures.cpu)
        let stream = try codec.encode(try CodecFixtures.image("image_64x64.png"))
        let parsed = try PSICStream(bytes: stream)
        XCTAssertEqual(try parsed.truncated(toLevels: codec.model.levels), stream, "a cut at every level is the stream")
        for l in 1..<codec.model.levels {
            let cut = try parsed.truncated(toLevels: l)
            XCTAssertLessThan(cut.count, stream.count)
            XCTAssertEqual(try PSICStream.peekHeader(cut).levelsPresent, l)
            XCTAssertEqual(try codec.decodeLatents(cut, seeds: [9]).map(\.ints),
                           try codec.decodeLatents(stream, levels: l, seeds: [9]).map(\.ints), "level \(l)")
        }
    }

    /// A size limit keeps the most levels that fit: exactly the stream `truncated` gives, at
    /// every boundary; below the first level, a typed error that says what it needs.
    func testSizeLimitKeepsTheMostLevelsThatFit() throws {
        let codec = try ImageCodec(model: try CodecFixtures.loadModel(), backend: CodecFixtures.cpu)
        let image = try CodecFixtures.image("image_128x96.png")
        let stream = try codec.encode(image, seed: 4)
        let parsed = try PSICStream(bytes: stream)
        let cuts = try (1...codec.model.levels).map { try parsed.truncated(toLevels: $0) }
        for (i, cut) in cuts.enumerated() {
            XCTAssertEqual(try codec.encode(image, seed: 4, maxBytes: cut.count), cut, "limit = level \(i + 1)'s size")
            if i > 0 {
                XCTAssertEqual(try codec.encode(image, seed: 4, maxBytes: cut.count - 1), cuts[i - 1], "one byte under level \(i + 1)")
            }
        }
        XCTAssertEqual(try codec.encode(image, seed: 4, maxBytes: Int.max), stream)
        XCTAssertEqual(try codec.encode(image, levels: 3, seed: 4, maxBytes: Int.max), cuts[2])
        for limit in [cuts[0].count - 1, 1, 0, -5] {
            XCTAssertThrowsError(try codec.encode(image, maxBytes: limit)) { error in
                XCTAssertEqual(error as? CodecError, .budgetTooSmall(maxBytes: limit, smallest: cuts[0].count))
            }
        }
        // In a batch, an image whose limit is too small fails alone.
        let results = codec.encodeBatch([EncodeRequest(image: image, seed: 4, maxBytes: cuts[1].count),
                                         EncodeRequest(image: image, seed: 4, maxBytes: 10)])
        XCTAssertEqual(try results[0].get(), cuts[1])
        XCTAssertThrowsError(try results[1].get())
    }

    /// Format versions lay out the same substreams: a version-1 stream carries the version-2
    /// stream's coded bytes, decodes to the same pixels, and costs exactly the container bytes
    /// the layouts differ by; a size limit is met in the version asked for.
    func testFormatVersionsCarryTheSameCodedBytes() throws {
        let codec = try ImageCodec(model: try CodecFixtures.loadModel(), backend: CodecFixtures.cpu)
        let image = try CodecFixtures.image("image_128x96.png")
        let v2 = try codec.encode(image, seed: 4)
        let v1 = try codec.encode(image, seed: 4, formatVersion: 1)
        let (p1, p2) = (try PSICStream(bytes: v1), try PSICStream(bytes: v2))
        XCTAssertEqual([p1.header.formatVersion, p2.header.formatVersion], [1, 2])
        var container = (p1.header.byteCount, p2.header.byteCount)
        for (a, b) in zip([p1.zSection] + p1.levelSections, [p2.zSection] + p2.levelSections) {
            XCTAssertEqual((0..<a.substreamCount).map { Array(a.substream($0)) }, (0..<b.substreamCount).map { Array(b.substream($0)) })
            container.0 += a.tableByteCount
            container.1 += b.tableByteCount
        }
        XCTAssertEqual(v1.count - v2.count, container.0 - container.1)
        XCTAssertGreaterThan(container.0 - container.1, 18)
        XCTAssertEqual(try codec.decode(v1, seeds: [5]).map(\.pixels), try codec.decode(v2, seeds: [5]).map(\.pixels))
        let cut = try p1.truncated(toLevels: 2)
        XCTAssertEqual(try codec.encode(image, seed: 4, maxBytes: cut.count, formatVersion: 1), cut)
        XCTAssertThrowsError(try codec.encode(image, formatVersion: 3)) { error in
            XCTAssertEqual(error as? CodecError, .unsupportedFormatVersion(3, supported: 1...2))
        }
    }

    /// A PSNR target keeps the fewest levels whose own decode reaches it, and reports the PSNR
    /// that decode really has.
    func testQualityTargetKeepsTheFewestLevelsThatReachIt() throws {
        let codec = try ImageCodec(model: try CodecFixtures.loadModel(), backend: CodecFixtures.cpu)
        let image = try CodecFixtures.image("image_128x96.png")
        let stream = try codec.encode(image, seed: 6)
        let parsed = try PSICStream(bytes: stream)
        let L = codec.model.levels
        let cuts = try (1...L).map { try parsed.truncated(toLevels: $0) }
        let psnrs = try cuts.map { try codec.decode($0)[0].psnr(to: image) }
        for l in 1..<L { XCTAssertGreaterThan(psnrs[l], psnrs[l - 1], "PSNR at level \(l + 1)") }
        for l in 1...L {
            for target in [psnrs[l - 1], psnrs[l - 1] - 0.01] {
                let chosen = try codec.encode(image, minimumPSNR: target, seed: 6)
                XCTAssertTrue(chosen.reached)
                XCTAssertEqual(chosen.levels, (1...L).first { psnrs[$0 - 1] >= target }, "target \(target) dB")
                XCTAssertEqual(chosen.stream, cuts[chosen.levels - 1])
                XCTAssertEqual(chosen.psnr, psnrs[chosen.levels - 1])
                XCTAssertGreaterThanOrEqual(chosen.psnr, target)
            }
        }
        let beyond = try codec.encode(image, minimumPSNR: psnrs[L - 1] + 0.01, seed: 6)
        XCTAssertFalse(beyond.reached)
        XCTAssertEqual(beyond.levels, L)
        XCTAssertEqual(beyond.stream, stream)
        for bad in [Double.nan, .infinity] {
            XCTAssertThrowsError(try codec.encode(image, minimumPSNR: bad)) { error in
                guard case .invalidQualityTarget? = error as? CodecError else { return XCTFail("\(error)") }
            }
        }
        // A batch (one decodeBatch per round) gives each image what it gets alone; a bad target fails alone.
        let small = try CodecFixtures.image("image_64x64.png")
        let batch = codec.encodeBatch(targeting: [QualityRequest(image: image, minimumPSNR: psnrs[4], seed: 6),
                                                  QualityRequest(image: small, minimumPSNR: .nan),
                                                  QualityRequest(image: small, minimumPSNR: 24, seed: 1)])
        XCTAssertEqual(try batch[0].get().stream, cuts[4])
        XCTAssertThrowsError(try batch[1].get())
        XCTAssertEqual(try batch[2].get().stream, try codec.encode(small, minimumPSNR: 24, seed: 1).stream)
    }

    /// An image whose own buffers do not fit the free memory is refused before any work, with
    /// what it needs and what is free (a small stream can describe a huge flat image).
    func testImagesLargerThanTheFreeMemoryAreRefused() throws {
        let model = try CodecFixtures.loadModel()
        let image = try CodecFixtures.image("image_128x96.png")
        let stream = try ImageCodec(model: model, backend: CodecFixtures.cpu).encode(image)
        let perImage = try ImageCodec(model: model, backend: CodecFixtures.cpu).imageBufferBytes(width: 128, height: 96)
        XCTAssertEqual(perImage, 128 * 128 * 12 + 128 * 96 * 3 + 64 * 4 * (3 * 160 + 128))
        // Room for one image's buffers, not for four.
        let tight = try ImageCodec(model: model, backend: CodecFixtures.cpu, availableMemory: { perImage + 1000 })
        XCTAssertEqual(try tight.encode(image), stream)
        XCTAssertEqual(try tight.decode(stream).count, 1)
        XCTAssertThrowsError(try tight.decode(stream, seeds: [1, 2, 3, 4])) { error in
            XCTAssertEqual(error as? CodecError, .insufficientMemory(width: 128, height: 96, neededBytes: 4 * perImage,
                                                                     availableBytes: perImage + 1000))
        }
        let none = try ImageCodec(model: model, backend: CodecFixtures.cpu, availableMemory: { 100_000 })
        XCTAssertThrowsError(try none.encode(image)) { XCTAssertTrue($0 is CodecError, "\($0)") }
        XCTAssertThrowsError(try none.decode(stream)) { XCTAssertTrue($0 is CodecError, "\($0)") }
        // Unknown free memory: no check.
        XCTAssertEqual(try ImageCodec(model: model, backend: CodecFixtures.cpu, availableMemory: { nil }).encode(image), stream)
    }

    /// Idle graphs hold memory the free-memory figure no longer shows: they give it back before
    /// an image would be refused for want of it. Here the free memory is one image's buffers
    /// less the tensor memory idle graphs hold (what releasing frees: all but the integer
    /// layers' weights), so the third encode fits only after they release.
    func testIdleGraphsMakeRoomBeforeAnImageIsRefused() throws {
        let model = try CodecFixtures.loadModel()
        let image = try CodecFixtures.image("image_128x96.png")
        let perImage = try ImageCodec(model: model, backend: CodecFixtures.cpu).imageBufferBytes(width: 128, height: 96)
        let box = CodecBox()
        let codec = try ImageCodec(model: model, backend: CodecFixtures.cpu,
                                   availableMemory: { perImage + 1000 + box.weights - (box.codec?.idleGraphBytes ?? 0) })
        box.codec = codec
        box.weights = 1 << 40
        let stream = try codec.encode(image)
        codec.transforms.releaseIdleMemory()
        box.weights = codec.idleGraphBytes
        XCTAssertEqual(try codec.encode(image), stream)
        XCTAssertGreaterThan(codec.idleGraphBytes, box.weights + 1000, "the encodes left graphs idle with their memory")
        XCTAssertEqual(try codec.encode(image), stream)
        XCTAssertEqual(try codec.decode(stream).count, 1)
    }

    /// The bisection finds the fewest levels reaching the target with at most 1 + ⌈log2 L⌉ decodes.
    func testLevelSearchBisects() {
        for L in 1...8 {
            for target in stride(from: 0.5, through: Double(L) + 0.5, by: 0.5) {
                var search = LevelSearch(target: target, allLevels: L)
                var probes = 0
                while let p = search.nextProbe {
                    probes += 1
                    search.record(levels: p, psnr: Double(p))   // PSNR = level
                }
                let expected = (1...L).first { Double($0) >= target }
                XCTAssertEqual(search.outcome.reached, expected != nil, "L \(L), target \(target)")
                XCTAssertEqual(search.outcome.levels, expected ?? L, "L \(L), target \(target)")
                XCTAssertLessThanOrEqual(probes, 1 + Int(ceil(log2(Double(L)))), "L \(L), target \(target)")
            }
        }
    }

    func testSeedsGiveDifferentSynonymsOnlyForSampledLevels() throws {
        let codec = try ImageCodec(model: try CodecFixtures.loadModel(), backend: CodecFixtures.cpu)
        let stream = try codec.encode(try CodecFixtures.image("image_64x64.png"))
        let full = try codec.decodeLatents(stream, seeds: [1, 2])
        XCTAssertEqual(full[0].ints, full[1].ints, "with every level present the seed must not matter")
        let partial = try codec.decodeLatents(stream, levels: 2, seeds: [1, 2, 1])
        XCTAssertNotEqual(partial[0].ints, partial[1].ints, "different seeds must sample different details")
        XCTAssertEqual(partial[0].ints, partial[2].ints, "the same seed must sample the same details")
        // The transmitted levels are shared by every sample.
        let n = 2 * codec.model.levelChannels * partial[0].shape.planeSize
        XCTAssertEqual(Array(partial[0].ints![..<n]), Array(partial[1].ints![..<n]))
    }

    /// `details: .mean` fills the untransmitted levels with the prior's mean: the transmitted
    /// levels are the sampled decode's, the rest does not depend on the seed, and the image is
    /// closer to the original than the sampled ones on average (that is what the mode is for).
    func testMeanDetailsAreDeterministicAndCloser() throws {
        let codec = try ImageCodec(model: try CodecFixtures.loadModel(), backend: CodecFixtures.cpu)
        let image = try CodecFixtures.image("image_128x96.png")
        let stream = try codec.encode(image)
        let mean = try codec.decodeLatents(stream, levels: 2, seeds: [1, 2], details: .mean)
        XCTAssertEqual(mean[0].ints, mean[1].ints, "the mean must not depend on the seed")
        let sampled = try codec.decodeLatents(stream, levels: 2, seeds: [1])
        let n = 2 * codec.model.levelChannels * mean[0].shape.planeSize
        XCTAssertEqual(Array(mean[0].ints![..<n]), Array(sampled[0].ints![..<n]), "transmitted levels differ")
        XCTAssertNotEqual(Array(mean[0].ints![n...]), Array(sampled[0].ints![n...]))
        // With every level present there is nothing to fill: both modes decode the same latents.
        XCTAssertEqual(try codec.decodeLatents(stream, seeds: [1], details: .mean).map(\.ints),
                       try codec.decodeLatents(stream, seeds: [1]).map(\.ints))
        let meanImage = try codec.decode(stream, levels: 1, details: .mean)[0]
        let sampledPSNR = try codec.decode(stream, levels: 1, seeds: [0, 1, 2, 3]).map { psnr($0, image) }
        let average = sampledPSNR.reduce(0, +) / Double(sampledPSNR.count)
        XCTAssertGreaterThan(psnr(meanImage, image), average, "level 1: mean \(psnr(meanImage, image)) dB, samples \(sampledPSNR)")
    }

    /// `detailSpread` samples the untransmitted levels from tables further up the scale grid:
    /// the transmitted levels stay, the first sampled level lies further from its mean (the mean
    /// decode's latents) for the same seed, 0 is the default, and the stream's full decode and bad
    /// requests are untouched or refused.
    func testDetailSpreadWidensOnlyTheSampledLevels() throws {
        let codec = try ImageCodec(model: try CodecFixtures.loadModel(), backend: CodecFixtures.cpu)
        let stream = try codec.encode(try CodecFixtures.image("image_128x96.png"))
        let l = 2
        let n = l * codec.model.levelChannels * (try codec.decodeLatents(stream, seeds: [1]))[0].shape.planeSize
        let next = n + codec.model.levelChannels * (try codec.decodeLatents(stream, seeds: [1]))[0].shape.planeSize
        let mean = try codec.decodeLatents(stream, levels: l, seeds: [1], details: .mean)[0].ints!
        func distance(_ spread: Int) throws -> (latents: [Int32], fromMean: Int) {
            let latents = try codec.decodeLatents(stream, levels: l, seeds: [1], detailSpread: spread)[0].ints!
            XCTAssertEqual(Array(latents[..<n]), Array(mean[..<n]), "spread \(spread): transmitted levels differ")
            // the first sampled level's mean is the mean decode's: only the draw differs
            return (latents, zip(latents[n..<next], mean[n..<next]).map { abs(Int($0) - Int($1)) }.reduce(0, +))
        }
        let (trained, d0) = try distance(0)
        XCTAssertEqual(trained, try codec.decodeLatents(stream, levels: l, seeds: [1])[0].ints!)
        let (_, dWide) = try distance(5), (_, dNarrow) = try distance(-5), (_, dTop) = try distance(DecodeRequest.detailSpreadRange.upperBound)
        XCTAssertGreaterThan(dWide, d0)
        XCTAssertLessThan(dNarrow, d0)
        XCTAssertGreaterThan(dTop, dWide)
        XCTAssertEqual(try codec.decodeLatents(stream, seeds: [1], detailSpread: 5).map(\.ints),
                       try codec.decodeLatents(stream, seeds: [1]).map(\.ints), "every level sent: nothing is sampled")
        XCTAssertThrowsError(try codec.decode(stream, levels: l, detailSpread: DecodeRequest.detailSpreadRange.upperBound + 1)) {
            XCTAssertEqual($0 as? CodecError, .invalidDetailSpread(33, allowed: DecodeRequest.detailSpreadRange))
        }
        XCTAssertThrowsError(try codec.decode(stream, levels: l, details: .mean, detailSpread: 2)) {
            XCTAssertEqual($0 as? CodecError, .detailSpreadWithMeanDetails)
        }
    }

    /// `.calibrated` draws each untransmitted element from the table the coder would code it with
    /// (the prior's index plus its channel's coding offset): for the same seed it is the plain
    /// draw moved up by exactly those offsets, transmitted levels stay, the full decode is
    /// untouched, a spread counts from the coder's tables, and seeds give different draws.
    func testCalibratedDetailsDrawFromTheCodersTables() throws {
        let model = try CodecFixtures.loadModel()
        let codec = try ImageCodec(model: model, backend: CodecFixtures.cpu)
        let offsets = model.codingOffsets
        XCTAssertTrue(offsets.contains { $0 != 0 }, "the shipped model has coding offsets; without them this test shows nothing")
        let stream = try codec.encode(try CodecFixtures.image("image_128x96.png"))
        let lc = model.levelChannels
        let plane = try codec.decodeLatents(stream, seeds: [1])[0].shape.planeSize
        let l = 1
        let sent = l * lc * plane
        let mean = try codec.decodeLatents(stream, levels: l, seeds: [1], details: .mean)[0].ints!
        let plain = try codec.decodeLatents(stream, levels: l, seeds: [1])[0].ints!
        let calibrated = try codec.decodeLatents(stream, levels: l, seeds: [1], details: .calibrated)[0].ints!
        XCTAssertEqual(Array(calibrated[..<sent]), Array(mean[..<sent]), "transmitted levels differ")
        XCTAssertTrue(calibrated != plain, "the calibrated draw is the plain one")  // not AssertNotEqual: it prints both grids
        // The sampler's counters do not depend on the table, so each channel of the first
        // untransmitted level is the plain draw spread by that channel's offset.
        let next = sent + lc * plane
        let firstOffsets = Array(offsets[(l * lc)..<((l + 1) * lc)])
        for k in Set(firstOffsets) {
            let spread = try codec.decodeLatents(stream, levels: l, seeds: [1], detailSpread: Int(k))[0].ints!
            for c in firstOffsets.indices where firstOffsets[c] == k {
                let range = (sent + c * plane)..<(sent + (c + 1) * plane)
                XCTAssertEqual(Array(calibrated[range]), Array(spread[range]), "channel \(c) of level \(l + 1): offset \(k)")
            }
        }
        // Wider on the whole: further from the mean than the plain draw with the same seed.
        func fromMean(_ latents: [Int32]) -> Int {
            zip(latents[sent..<next], mean[sent..<next]).map { abs(Int($0) - Int($1)) }.reduce(0, +)
        }
        XCTAssertGreaterThan(fromMean(calibrated), fromMean(plain))
        XCTAssertTrue(try codec.decodeLatents(stream, levels: l, seeds: [2], details: .calibrated)[0].ints! != calibrated, "seeds 1 and 2 draw alike")
        let calibratedWide = try codec.decodeLatents(stream, levels: l, seeds: [1], details: .calibrated, detailSpread: 3)[0].ints!
        XCTAssertGreaterThan(fromMean(calibratedWide), fromMean(calibrated))
        XCTAssertEqual(try codec.decodeLatents(stream, seeds: [1], details: .calibrated).map(\.ints),
                       try codec.decodeLatents(stream, seeds: [1]).map(\.ints), "every level sent: nothing is drawn")
    }

    /// Seeds that share their latents (the mean filled the rest, or every level was sent) share
    /// one g_s run; seeds that sample get one each.
    func testSeedsWithTheSameLatentsAreSynthesizedOnce() throws {
        let backend = SynthesisCountingBackend(CodecFixtures.cpu)
        let codec = try ImageCodec(model: try CodecFixtures.loadModel(), backend: backend)
        let stream = try codec.encode(try CodecFixtures.image("image_64x64.png"))
        backend.synthesisRuns = 0
        let mean = try codec.decode(stream, levels: 2, seeds: [1, 2, 3], details: .mean)
        XCTAssertEqual(backend.synthesisRuns, 1)
        XCTAssertEqual(mean.count, 3)
        XCTAssertEqual(mean[0].pixels, mean[2].pixels)
        XCTAssertEqual(mean[0].pixels, try codec.decode(stream, levels: 2, seeds: [9], details: .mean)[0].pixels)
        backend.synthesisRuns = 0
        XCTAssertEqual(try codec.decode(stream, seeds: [1, 2]).count, 2, "all levels present")
        XCTAssertEqual(backend.synthesisRuns, 1)
        backend.synthesisRuns = 0
        let sampled = try codec.decode(stream, levels: 2, seeds: [1, 2])
        XCTAssertEqual(backend.synthesisRuns, 2)
        XCTAssertNotEqual(sampled[0].pixels, sampled[1].pixels)
        // In a batch, beside a request that samples, and the latents calls still give one per seed.
        backend.synthesisRuns = 0
        let batch = codec.decodeBatch([DecodeRequest(stream: stream, levels: 1, seeds: [4, 5], details: .mean),
                                       DecodeRequest(stream: stream, levels: 1, seeds: [4, 5])])
        XCTAssertEqual(backend.synthesisRuns, 3)
        XCTAssertEqual(try batch.map { try $0.get().count }, [2, 2])
        XCTAssertEqual(try codec.decodeLatents(stream, levels: 1, seeds: [4, 5], details: .mean).count, 2)
    }

    func testBadStreamsAreRefusedWithoutCrashing() throws {
        let codec = try ImageCodec(model: try CodecFixtures.loadModel(), backend: CodecFixtures.cpu)
        let stream = try codec.encode(try CodecFixtures.image("image_64x64.png"))
        var rng = SystemRandomNumberGenerator()
        // Flipped bytes anywhere: a checksum or a structural check must catch each.
        for _ in 0..<200 {
            var bad = stream
            let i = Int.random(in: 0..<bad.count, using: &rng)
            bad[i] ^= UInt8.random(in: 1...255, using: &rng)
            XCTAssertThrowsError(try codec.decode(bad), "flipped byte \(i) was not detected")
        }
        // Cuts inside a section, random bytes, nothing at all.
        for cut in [0, 3, 20, stream.count / 2, stream.count - 1] {
            XCTAssertThrowsError(try codec.decode(Array(stream[..<cut])))
        }
        for n in [1, 44, 100, 4096] {
            XCTAssertThrowsError(try codec.decode((0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }))
        }
        // A stream from another model is refused as such.
        var other = try PSICStream.peekHeader(stream)
        other.modelFingerprint = [1, 2, 3, 4, 5, 6, 7, 8]
        let foreign = other.serialized() + stream[other.byteCount...]
        XCTAssertThrowsError(try codec.decode(foreign)) { error in
            guard case StreamError.modelMismatch = error else { return XCTFail("expected modelMismatch, got \(error)") }
        }
    }

    func testInvalidArgumentsAreRefused() throws {
        let codec = try ImageCodec(model: try CodecFixtures.loadModel(), backend: CodecFixtures.cpu)
        let image = try CodecFixtures.image("image_64x64.png")
        XCTAssertThrowsError(try codec.encode(image, levels: 0))
        XCTAssertThrowsError(try codec.encode(image, levels: codec.model.levels + 1))
        let stream = try codec.encode(image)
        XCTAssertThrowsError(try codec.decodeLatents(stream, seeds: []))
        XCTAssertThrowsError(try codec.decodeLatents(stream, levels: 0, seeds: [1]))
    }
}

/// The CPU backend, counting the g_s graphs it runs (those whose input is the latents).
private final class SynthesisCountingBackend: Backend, @unchecked Sendable {
    let inner: Backend
    var synthesisRuns = 0
    var name: String { inner.name }
    var maxTensorBytes: Int { inner.maxTensorBytes }

    init(_ inner: Backend) { self.inner = inner }

    func prepare(_ graph: Graph) throws -> PreparedGraph { try inner.prepare(graph) }

    func runBatch(_ runs: [BatchRun]) throws -> [GraphResult] {
        synthesisRuns += runs.filter { $0.graph.graph.tensors.contains { $0.isInput && $0.name == "latents" } }.count
        return try inner.runBatch(runs)
    }
}

/// Lets a codec's free-memory closure see the codec it belongs to.
private final class CodecBox: @unchecked Sendable {
    weak var codec: ImageCodec?
    var weights = 0
}
