import Foundation
import PSICCPU
import PSICEngine
import PSICEntropy
import PSICImage
import PSICModel

/// Encodes images into PSIC streams and decodes streams (or any cut of them) back to images.
///
/// Stateless apart from caches of prepared graphs: safe to call from many threads at once.
/// Every stage of the codec is a method of this type, in order:
/// image → `ModelTransforms.analyze` (g_a, h_a) → z coding → `ModelTransforms.hyperSynthesize`
/// → per level: entropy parameters → symbols → `LevelCoder` → stream; and back.
public final class ImageCodec: Sendable {
    public let model: CodecModel
    let transforms: ModelTransforms
    let zTables: CDFTableSet
    let gaussianTables: CDFTableSet
    /// The Gaussian tables' prices, for the rate-distortion quantiser.
    let symbolCosts: SymbolCosts
    let availableMemory: @Sendable () -> Int?

    /// Idle graph memory kept by default: an eighth of the memory the process may use (the
    /// machine's, or a container's limit: `HostMemory.total`). Preparing graphs again for each
    /// image of a batch (allocating and zeroing their memory) made a 16-megapixel encode take
    /// 2–3.5× the time its pixels explain, so graphs stay prepared; past this budget the least
    /// recently used give their tensor memory back and keep their layers (`PreparedGraphPool`).
    /// Half, as before session 16, let idle graphs take the room a large image's own buffers
    /// needed: a 34.6-megapixel encode was OOM-killed in a 1 GiB memory group with half and
    /// ran with an eighth (docs/design.md).
    public static let defaultIdleGraphBytes = HostMemory.total / 8

    /// The codec on an opened backend choice, with that choice's fallback.
    public convenience init(model: CodecModel, handle: BackendHandle,
                            idleGraphBytesLimit: Int = ImageCodec.defaultIdleGraphBytes,
                            tileTensorBytes: Int = ImageCodec.defaultTileTensorBytes) throws {
        try self.init(model: model, backend: handle.backend, fallback: handle.fallback,
                      idleGraphBytesLimit: idleGraphBytesLimit, tileTensorBytes: tileTensorBytes)
    }

    /// The largest tensor of a network's graph before an image runs in tiles: 512 MiB, reached
    /// at about 5.5 megapixels by g_a and g_s (g_a's first layer: 96 channels at half
    /// resolution; the 1/16-resolution networks from about 128 megapixels), or a
    /// sixteenth of the memory the process may use when that is less (`HostMemory.total`: a
    /// container's limit). A graph holds a few times its largest tensor, and oneDNN adds blocked
    /// copies that no check sees; under a 2 GiB limit a 35-megapixel encode with 512 MiB tiles
    /// was killed by the kernel, and ran (peak 1.98 GB) with 128 MiB ones. This also applies on
    /// a machine with under 8 GiB. Tiles cost an overlap each side (32 pixels for g_a and g_s,
    /// 128 for h_a and h_s; docs/design.md, "Large images run in tiles").
    public static let defaultTileTensorBytes = min(512 << 20, max(16 << 20, HostMemory.total / 16))

    /// Graph runs that were tiles of a larger image so far.
    public var tiledRuns: Int { transforms.tiledRuns }

    /// Tensor memory idle prepared graphs hold now (internal: tests).
    var idleGraphBytes: Int { transforms.idleGraphBytes }

    /// Graph runs (one per image and network stage) that were too large for the backend and
    /// ran on the fallback backend so far.
    public var fallbackRuns: Int { transforms.fallbackRuns }

    /// Largest accepted image side; streams store sizes in 16 bits.
    public static let maxSide = 1 << 16

    /// - Parameters:
    ///   - fallback: where graphs too large for `backend` run (`Backend.maxTensorBytes`: a large
    ///     photo on a GPU with a small storage buffer range); without one they fail.
    ///   - idleGraphBytesLimit: tensor memory kept in prepared graphs between calls, for reuse
    ///     by images of the same size (least recently used dropped first; default
    ///     `defaultIdleGraphBytes`).
    ///   - tileTensorBytes: a larger image runs its analysis and synthesis transforms in tiles
    ///     whose graphs hold no tensor over this (nor over `backend.maxTensorBytes` when there
    ///     is no fallback), so memory stays bounded whatever the image size.
    ///   - availableMemory: the memory free for the image-sized buffers every image needs
    ///     whatever the tiling (`HostMemory.available`: the machine's, or a container's room);
    ///     an image that cannot fit them fails with `CodecError.insufficientMemory` up front.
    public init(model: CodecModel, backend: Backend, fallback: Backend? = nil,
                idleGraphBytesLimit: Int = ImageCodec.defaultIdleGraphBytes,
                tileTensorBytes: Int = ImageCodec.defaultTileTensorBytes,
                availableMemory: @escaping @Sendable () -> Int? = HostMemory.available) throws {
        self.model = model
        self.availableMemory = availableMemory
        self.transforms = try ModelTransforms(model: model, backend: backend, fallback: fallback,
                                              idleGraphBytesLimit: idleGraphBytesLimit, tileTensorBytes: tileTensorBytes)
        self.zTables = try CDFTableSet(model.zTables)
        self.gaussianTables = try CDFTableSet(model.gaussianTables)
        self.symbolCosts = SymbolCosts(gaussianTables)
        guard zTables.count == model.zChannels, gaussianTables.count == model.info.constants.scaleCount else {
            throw ModelError.unsupportedModel(reason: "CDF table counts do not match the architecture")
        }
    }

    // MARK: Encoding

    /// Compresses `image`, transmitting the first `levels` synonymous levels (all when nil), or
    /// as many of them as fit in `maxBytes` when given (see `EncodeRequest.maxBytes`).
    public func encode(_ image: RGBImage, levels: Int? = nil, seed: UInt64 = 0, maxBytes: Int? = nil,
                       formatVersion: UInt16 = PSICStream.formatVersion, quantization: Quantization = .modelDefault,
                       profile: CodecProfile? = nil) throws -> [UInt8] {
        try encodeBatch([EncodeRequest(image: image, levels: levels, seed: seed, maxBytes: maxBytes, formatVersion: formatVersion,
                                       quantization: quantization)],
                        profile: profile)[0].get()
    }

    /// The quantiser `quantization` names for this model: nil for nearest rounding.
    func quantizer(_ quantization: Quantization) throws(CodecError) -> RateDistortionQuantizer? {
        let lambdas: [Double]
        switch quantization {
        case .nearest: return nil
        case .modelDefault:
            guard let l = model.rateDistortionLambdas else { return nil }
            lambdas = l
        case let .rateDistortion(l):
            guard l.isFinite, l > 0 else { throw .invalidRateDistortionLambda(l) }
            lambdas = [Double](repeating: l, count: model.levels)
        }
        return RateDistortionQuantizer(costs: symbolCosts, lambdas: lambdas)
    }

    /// Compresses several images together: every network stage runs once for the whole batch
    /// (`Backend.runBatch`: one queue submission per stage on Vulkan), host stages (rounding,
    /// entropy coding) run per image in between. Each stream is byte-identical to what
    /// `encode` gives for that image alone. An image that fails (bad `levels`, too large)
    /// fails alone; an engine failure fails every image still in flight.
    public func encodeBatch(_ requests: [EncodeRequest], profile: CodecProfile? = nil) -> [Result<[UInt8], Error>] {
        let L = model.levels
        let m = CodecModel.sizeMultiple
        var lanes = BatchLanes<EncodeState, [UInt8]>(count: requests.count)
        var valid: [Int] = []
        var quantizers = [RateDistortionQuantizer?](repeating: nil, count: requests.count)
        for (k, r) in requests.enumerated() {
            let l = r.levels ?? L
            if !(1...L).contains(l) {
                lanes.fail(k, CodecError.invalidLevels(requested: l, available: 1...L))
            } else if !PSICStream.readableFormatVersions.contains(r.formatVersion) {
                lanes.fail(k, CodecError.unsupportedFormatVersion(r.formatVersion, supported: PSICStream.readableFormatVersions))
            } else if r.image.width > Self.maxSide || r.image.height > Self.maxSide {
                lanes.fail(k, CodecError.imageTooLarge(width: r.image.width, height: r.image.height, limit: Self.maxSide))
            } else if let e = memoryShortfall(width: r.image.width, height: r.image.height, copies: 1) {
                lanes.fail(k, e)
            } else {
                do {
                    quantizers[k] = try quantizer(r.quantization)
                    valid.append(k)
                } catch {
                    lanes.fail(k, error)
                }
            }
        }
        do {
            let analysed = try transforms.analyze(valid.map { k in
                let image = requests[k].image
                let ph = (image.height + m - 1) / m * m, pw = (image.width + m - 1) / m * m
                return (image.planarFloats(paddedWidth: pw, paddedHeight: ph), ph, pw)
            }, profile: profile)
            let zClamp = Float(model.info.constants.zClamp)
            for (k, (y, z)) in zip(valid, analysed) {
                lanes.start(k) {
                    let zHat = Tensor(shape: z.shape, ints: (z.floats ?? []).map { v in
                        Int32((v.isNaN ? 0 : min(max(v, -zClamp), zClamp)).rounded())
                    })
                    let zSection = try LevelCoder.encodeByChannel(symbols: zHat.ints ?? [], shape: LatentShape(zHat.shape),
                                                                  tables: zTables)
                    return EncodeState(y: y.floats ?? [], zHat: zHat, zSection: zSection, levels: requests[k].levels ?? L)
                }
            }
            let coded = lanes.active
            let hyper = try transforms.hyperSynthesize(coded.map { lanes[$0].zHat }, profile: profile)
            for (k, h) in zip(coded, hyper) {
                lanes.update(k) { $0.grid = LatentGrid(hyper: h, levelChannels: model.levelChannels, levels: L) }
            }
            let clamp = Float(model.info.constants.latentClamp)
            for i in 0..<L {
                let atLevel = lanes.active.filter { lanes[$0].levels > i }
                guard !atLevel.isEmpty else { break }
                let outputs = try transforms.levelParameters(level: i, contexts: atLevel.map { lanes[$0].grid!.context(forLevel: i) },
                                                             profile: profile)
                for (k, out) in zip(atLevel, outputs) {
                    lanes.update(k) { st in
                        let params = LevelParameters(networkOutput: out, model: model, level: i)
                        let base = i * model.levelChannels * st.grid!.plane
                        var symbols = [Int32](repeating: 0, count: params.means.count)
                        var latents = [Int32](repeating: 0, count: params.means.count)
                        let tableIndexes = params.codingTableIndexes
                        if let rdq = quantizers[k], rdq.lambdas[i] > 0 {
                            let lambda = rdq.lambdas[i], costs = rdq.costs
                            for j in 0..<symbols.count {
                                symbols[j] = RateDistortionQuantizer.symbol(latent: st.y[base + j], mean: params.means[j],
                                                                            codingTable: Int(tableIndexes[j]), clamp: clamp,
                                                                            lambda: lambda, costs: costs)
                            }
                        } else {
                            for j in 0..<symbols.count {
                                symbols[j] = LatentQuantizer.symbol(latent: st.y[base + j], mean: params.means[j], clamp: clamp)
                            }
                        }
                        for j in 0..<symbols.count { latents[j] = LatentQuantizer.latent(symbol: symbols[j], mean: params.means[j]) }
                        st.grid!.store(level: i, latents)
                        st.levelSections.append(try LevelCoder.encode(
                            symbols: symbols, tableIndexes: tableIndexes,
                            shape: LatentShape(channels: model.levelChannels, height: st.grid!.height, width: st.grid!.width),
                            tables: gaussianTables))
                    }
                }
            }
            lanes.finishAll { k, st in
                let grid = st.grid!, image = requests[k].image
                var header = StreamHeader(modelFingerprint: model.fingerprint, width: image.width, height: image.height,
                                          latentWidth: grid.width, latentHeight: grid.height,
                                          levelsPresent: L, levelsTotal: L, seed: requests[k].seed,
                                          formatVersion: requests[k].formatVersion)
                let format = header.formatVersion
                header.levelsPresent = try Self.levelsWithin(requests[k].maxBytes, headerBytes: header.byteCount,
                                                             zBytes: st.zSection.byteCount(format: format),
                                                             levelBytes: st.levelSections.map { $0.byteCount(format: format) })
                return try PSICStream.write(header: header, zSection: st.zSection,
                                            levelSections: Array(st.levelSections.prefix(header.levelsPresent)))
            }
        } catch {
            lanes.failRemaining(error)
        }
        return lanes.outcome
    }

    /// Bytes one image of `width`×`height` needs whatever the tiling: its buffers, which are its
    /// padded float planes (3 × 4 bytes a pixel), the RGB image (3), the latents as Int32 and as
    /// float (2 × 4 × C per 16×16 block) and the largest entropy-parameter context (4 × (hyper +
    /// C) per block), 24.5 bytes a pixel for the shipped model. Tile graphs and idle graphs come
    /// on top, bounded by a sixteenth and an eighth of the memory the process may use. Measured
    /// in memory groups on a 34.6-megapixel image (808 MiB of buffers by this count): encode and
    /// decode ran under 960 MiB (peaks 821 and 894 MiB) and are refused under 896 MiB, so the
    /// refusal is of an image that could not have run. (Until session 16 the check counted the
    /// buffers twice, as the image then needed 1.75 GiB to decode and 2 GiB to encode.)
    func imageBufferBytes(width: Int, height: Int) -> Int {
        let m = CodecModel.sizeMultiple
        let ph = (height + m - 1) / m * m, pw = (width + m - 1) / m * m
        let cells = (ph / 16) * (pw / 16)
        return ph * pw * 12 + width * height * 3 + cells * 4 * (3 * model.latentChannels + model.hyperChannels)
    }

    /// The error for an image whose buffers (`copies` of them: one per seed of a decode) do not
    /// fit the free memory; nil when they fit or the free memory is unknown. Idle graphs give
    /// their tensor memory back first when that is what stands in the way.
    func memoryShortfall(width: Int, height: Int, copies: Int) -> CodecError? {
        let needed = imageBufferBytes(width: width, height: height) * copies
        guard let available = availableMemory(), needed > available else { return nil }
        transforms.releaseIdleMemory()
        guard let after = availableMemory(), needed > after else { return nil }
        return .insufficientMemory(width: width, height: height, neededBytes: needed, availableBytes: after)
    }

    /// How many of the coded levels a stream keeps within `maxBytes` (all when nil): the most
    /// whose header, z section and level sections fit. Levels are nested, so no other stream
    /// of this model holds more of the image in that many bytes. (The header's size does not
    /// depend on the level count: levels present is one byte in every format version.)
    static func levelsWithin(_ maxBytes: Int?, headerBytes: Int, zBytes: Int, levelBytes: [Int]) throws -> Int {
        guard let maxBytes else { return levelBytes.count }
        var size = headerBytes + zBytes, kept = 0
        for bytes in levelBytes {
            size += bytes
            if size > maxBytes { break }
            kept += 1
        }
        guard kept > 0 else {
            throw CodecError.budgetTooSmall(maxBytes: maxBytes, smallest: headerBytes + zBytes + (levelBytes.first ?? 0))
        }
        return kept
    }
}

/// One image of `ImageCodec.encodeBatch`.
public struct EncodeRequest: Sendable {
    public var image: RGBImage
    /// Levels to transmit (all when nil).
    public var levels: Int?
    /// The sampling seed the stream carries.
    public var seed: UInt64
    /// A size limit for the stream, in bytes: it keeps the most of the coded levels that fit
    /// (`CodecError.budgetTooSmall` when not even the first does). No limit when nil.
    public var maxBytes: Int?
    /// The stream format version to write: the newest (`PSICStream.formatVersion`) unless a
    /// reader of an older one must read the stream. Every version decodes to the same image.
    public var formatVersion: UInt16
    /// How latents become symbols: the model file's choice unless set.
    public var quantization: Quantization

    public init(image: RGBImage, levels: Int? = nil, seed: UInt64 = 0, maxBytes: Int? = nil,
                formatVersion: UInt16 = PSICStream.formatVersion, quantization: Quantization = .modelDefault) {
        self.image = image
        self.levels = levels
        self.seed = seed
        self.maxBytes = maxBytes
        self.formatVersion = formatVersion
        self.quantization = quantization
    }
}

/// One stream of `ImageCodec.decodeBatch`.
public struct DecodeRequest: Sendable {
    public var stream: [UInt8]
    /// Levels to use (at most those present; all present when nil).
    public var levels: Int?
    /// One decode per seed (the stream's own seed when nil).
    public var seeds: [UInt64]?
    /// How the levels past `levels` are filled (drawn with the seeds from the prior or from the
    /// coder's calibrated tables, or their mean).
    public var details: DetailMode
    /// Sampled details drawn this many steps of the Gaussian scale table wider than the model's
    /// prior (negative: narrower); each step multiplies the scale by the table's ratio, about
    /// 1.063 for the shipped model, so 5 steps is about x 1.36. 0 (the default) is the prior itself.
    /// With `.calibrated` the steps count from the coder's tables instead of the prior's.
    /// The stream is unchanged: this is the decoder's choice, as `details` is. Training narrows the
    /// prior (its expected distortion over sampled details pulls the scale down), and the decodes'
    /// local statistics come closer to photos' as the spread widens, at a cost in PSNR
    /// (Tools/train/realism_probe.py; Tools/train/RESULTS.md, session 53).
    public var detailSpread: Int

    /// The detail spreads a decode accepts, in steps of the scale table.
    public static let detailSpreadRange = -16...32

    public init(stream: [UInt8], levels: Int? = nil, seeds: [UInt64]? = nil, details: DetailMode = .sampled,
                detailSpread: Int = 0) {
        self.stream = stream
        self.levels = levels
        self.seeds = seeds
        self.details = details
        self.detailSpread = detailSpread
    }
}

/// An image of an encode batch between stages.
private struct EncodeState {
    let y: [Float]
    let zHat: Tensor
    let zSection: CodedSection
    let levels: Int
    var grid: LatentGrid?
    var levelSections: [CodedSection] = []

    init(y: [Float], zHat: Tensor, zSection: CodedSection, levels: Int) {
        self.y = y
        self.zHat = zHat
        self.zSection = zSection
        self.levels = levels
    }
}

/// A request's decoded latents with each distinct grid once (see `decodeDistinctLatents`).
private struct DistinctLatents {
    /// One per seed, or one shared by every seed.
    let latents: [Tensor]
    let seedCount: Int

    /// One grid per seed, repeating a shared one.
    var perSeed: [Tensor] { latents.count == seedCount ? latents : Array(repeating: latents[0], count: seedCount) }
}

/// A stream of a decode batch between stages: one grid until the transmitted levels are in,
/// then one per seed.
private struct DecodeState {
    let header: StreamHeader
    let parsed: PSICStream
    let levels: Int
    let seeds: [UInt64]
    let details: DetailMode
    let detailSpread: Int
    let zHat: Tensor
    var grids: [LatentGrid] = []
}

extension ImageCodec {
    // MARK: Decoding

    /// The integer latents a stream decodes to at `levels` (levels beyond those present, or
    /// beyond `levels`, are sampled with each seed, or their mean with `details: .mean`):
    /// `[C][h][w]` in units of 1/16, one per seed. Identical on every backend; this is what
    /// cross-backend tests compare.
    public func decodeLatents(_ stream: [UInt8], levels: Int? = nil, seeds: [UInt64], details: DetailMode = .sampled,
                              detailSpread: Int = 0, profile: CodecProfile? = nil) throws -> [Tensor] {
        try decodeLatentsBatch([DecodeRequest(stream: stream, levels: levels, seeds: seeds, details: details,
                                              detailSpread: detailSpread)], profile: profile)[0].get()
    }

    /// `decodeLatents` of several streams together: each entropy-parameter level runs once for
    /// every stream and seed of the batch (one `Backend.runBatch`). Results equal the
    /// one-at-a-time ones; a bad stream fails alone.
    public func decodeLatentsBatch(_ requests: [DecodeRequest], profile: CodecProfile? = nil) -> [Result<[Tensor], Error>] {
        decodeDistinctLatents(requests, profile: profile).map { r in r.map(\.perSeed) }
    }

    /// The latents of each request, each distinct grid once: one per seed when the seeds sampled
    /// levels of their own, a single grid when every seed decodes to the same latents (all
    /// levels transmitted, or the mean filled the rest), so g_s need not run once per seed.
    private func decodeDistinctLatents(_ requests: [DecodeRequest], profile: CodecProfile?) -> [Result<DistinctLatents, Error>] {
        var lanes = BatchLanes<DecodeState, DistinctLatents>(count: requests.count)
        for (k, r) in requests.enumerated() {
            lanes.start(k) {
                let parsed = try PSICStream(bytes: r.stream, expectedFingerprint: model.fingerprint)
                let h = parsed.header
                guard h.levelsTotal == model.levels else {
                    throw StreamError.corrupt(reason: "stream has \(h.levelsTotal) levels, the model \(model.levels)")
                }
                guard h.levelsPresent >= 1 else { throw CodecError.noLevelsInStream }
                let l = min(r.levels ?? h.levelsPresent, h.levelsPresent)
                guard l >= 1 else { throw CodecError.invalidLevels(requested: r.levels ?? 0, available: 1...model.levels) }
                let seeds = r.seeds ?? [h.seed]
                guard (1...64).contains(seeds.count) else { throw CodecError.invalidSampleCount(seeds.count) }
                guard DecodeRequest.detailSpreadRange.contains(r.detailSpread) else {
                    throw CodecError.invalidDetailSpread(r.detailSpread, allowed: DecodeRequest.detailSpreadRange)
                }
                guard r.detailSpread == 0 || r.details.isDrawn else { throw CodecError.detailSpreadWithMeanDetails }
                // A stream of a few hundred KB can describe a flat image of billions of pixels.
                if let e = memoryShortfall(width: h.width, height: h.height, copies: seeds.count) { throw e }
                let zShape = TensorShape(channels: model.zChannels, height: h.zHeight, width: h.zWidth)
                let zHat = Tensor(shape: zShape, ints: try profile.measure(\.entropySeconds) {
                    try LevelCoder.decodeByChannel(parsed.zSection, shape: LatentShape(zShape), tables: zTables)
                })
                return DecodeState(header: h, parsed: parsed, levels: l, seeds: seeds, details: r.details,
                                   detailSpread: r.detailSpread, zHat: zHat)
            }
        }
        do {
            let parsed = lanes.active
            let hyper = try transforms.hyperSynthesize(parsed.map { lanes[$0].zHat }, profile: profile)
            for (k, hs) in zip(parsed, hyper) {
                lanes.update(k) { st in
                    let grid = LatentGrid(hyper: hs, levelChannels: model.levelChannels, levels: model.levels)
                    let h = st.header
                    guard grid.height == h.latentHeight, grid.width == h.latentWidth else {
                        throw StreamError.corrupt(reason: "latent size \(h.latentWidth)x\(h.latentHeight) does not match z")
                    }
                    st.grids = [grid]
                }
            }
            for i in 0..<model.levels {
                // Past the transmitted levels every seed samples its own continuation (the
                // mean is one continuation for all).
                for k in lanes.active where i == lanes[k].levels && lanes[k].grids.count == 1 && lanes[k].details.isDrawn {
                    lanes.update(k) { st in st.grids = st.seeds.map { _ in st.grids[0] } }
                }
                var grids: [(k: Int, seed: Int)] = []
                for k in lanes.active { for j in lanes[k].grids.indices { grids.append((k, j)) } }
                let outputs = try transforms.levelParameters(level: i, contexts: grids.map { lanes[$0.k].grids[$0.seed].context(forLevel: i) },
                                                             profile: profile)
                for ((k, j), out) in zip(grids, outputs) {
                    // A stream that failed at an earlier seed of this level is skipped (no state).
                    lanes.update(k) { st in
                        let params = LevelParameters(networkOutput: out, model: model, level: i)
                        let shape = LatentShape(channels: model.levelChannels, height: st.header.latentHeight, width: st.header.latentWidth)
                        let symbols: [Int32]
                        if i < st.levels {
                            symbols = try profile.measure(\.entropySeconds) {
                                try LevelCoder.decode(st.parsed.levelSections[i], tableIndexes: params.codingTableIndexes,
                                                      shape: shape, tables: gaussianTables)
                            }
                        } else if st.details == .mean {
                            symbols = [Int32](repeating: 0, count: shape.count)
                        } else {
                            let drawFrom = st.details == .calibrated ? params.codingTableIndexes : params.tableIndexes
                            symbols = try SynonymSampler.sampleLevel(tableIndexes: SynonymSampler.spread(drawFrom, by: st.detailSpread,
                                                                                                         tableCount: gaussianTables.count),
                                                                     shape: shape, tables: gaussianTables, seed: st.seeds[j], level: i)
                        }
                        st.grids[j].store(level: i, zip(symbols, params.means).map { LatentQuantizer.latent(symbol: $0, mean: $1) })
                    }
                }
            }
            lanes.finishAll { _, st in
                // One grid: all levels transmitted, or the mean filled them.
                DistinctLatents(latents: st.grids.map(\.latents), seedCount: st.seeds.count)
            }
        } catch {
            lanes.failRemaining(error)
        }
        return lanes.outcome
    }

    /// The sampling seed a stream carries (the encoder's choice; decoders may use any).
    public func streamSeed(_ stream: [UInt8]) throws -> UInt64 {
        try PSICStream.peekHeader(stream).seed
    }

    /// Decodes a stream to one image per seed (default: the stream's own seed); with
    /// `details: .mean` the untransmitted levels are their mean and every seed gives the same image;
    /// `detailSpread` widens sampled details (`DecodeRequest.detailSpread`).
    public func decode(_ stream: [UInt8], levels: Int? = nil, seeds: [UInt64]? = nil, details: DetailMode = .sampled,
                       detailSpread: Int = 0, profile: CodecProfile? = nil) throws -> [RGBImage] {
        try decodeBatch([DecodeRequest(stream: stream, levels: levels, seeds: seeds, details: details, detailSpread: detailSpread)],
                        profile: profile)[0].get()
    }

    /// Decodes several streams together (see `decodeLatentsBatch`); g_s runs once for every
    /// image of the batch. Each result equals `decode` of that stream alone.
    public func decodeBatch(_ requests: [DecodeRequest], profile: CodecProfile? = nil) -> [Result<[RGBImage], Error>] {
        let decoded = decodeDistinctLatents(requests, profile: profile)
        var results = decoded.map { r in r.map { _ in [RGBImage]() } }
        // One lane per distinct grid; `copies` seeds share it (the image repeats for them).
        var lanes: [(k: Int, header: StreamHeader, copies: Int)] = []
        var latents: [Tensor] = []
        for (k, r) in decoded.enumerated() {
            guard case let .success(d) = r, let header = try? PSICStream.peekHeader(requests[k].stream) else { continue }
            for y in d.latents {
                lanes.append((k, header, d.seedCount / d.latents.count))
                latents.append(y)
            }
        }
        do {
            let xs = try transforms.synthesize(latents, profile: profile)
            for ((k, h, copies), x) in zip(lanes, xs) {
                let image = RGBImage(planar: x.floats ?? [], planeWidth: x.shape.width, planeHeight: x.shape.height,
                                     width: h.width, height: h.height)
                if case var .success(images) = results[k] {
                    images.append(contentsOf: repeatElement(image, count: copies))
                    results[k] = .success(images)
                }
            }
        } catch {
            for k in Set(lanes.map(\.k)) { results[k] = .failure(error) }
        }
        return results
    }

}
