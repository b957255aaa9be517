import Foundation
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

    /// Largest accepted image side; streams store sizes in 16 bits.
    public static let maxSide = 1 << 16

    public init(model: CodecModel, backend: Backend) throws {
        self.model = model
        self.transforms = ModelTransforms(model: model, backend: backend)
        self.zTables = try CDFTableSet(model.zTables)
        self.gaussianTables = try CDFTableSet(model.gaussianTables)
        guard zTables.count == model.zChannels, gaussianTables.count == model.info.constants.scaleCount else {
            throw ModelError.unsupportedModel(reason: "CDF table counts do not match the architecture")
        }
    }

    // MARK: Encoding

    /// Compresses `image`, transmitting the first `levels` synonymous levels (all when nil).
    public func encode(_ image: RGBImage, levels: Int? = nil, seed: UInt64 = 0) throws -> [UInt8] {
        let L = model.levels
        let l = levels ?? L
        guard (1...L).contains(l) else { throw CodecError.invalidLevels(requested: l, available: 1...L) }
        guard image.width <= Self.maxSide, image.height <= Self.maxSide else {
            throw CodecError.imageTooLarge(width: image.width, height: image.height, limit: Self.maxSide)
        }
        let m = CodecModel.sizeMultiple
        let ph = (image.height + m - 1) / m * m, pw = (image.width + m - 1) / m * m
        let (y, z) = try transforms.analyze(image.planarFloats(paddedWidth: pw, paddedHeight: ph), height: ph, width: pw)
        let zClamp = Float(model.info.constants.zClamp)
        let zHat = Tensor(shape: z.shape, ints: (z.floats ?? []).map { v in
            Int32((v.isNaN ? 0 : min(max(v, -zClamp), zClamp)).rounded())
        })
        let zSection = try LevelCoder.encodeByChannel(symbols: zHat.ints ?? [], shape: LatentShape(zHat.shape), tables: zTables)
        var grid = LatentGrid(hyper: try transforms.hyperSynthesize(zHat), levelChannels: model.levelChannels, levels: L)
        let yValues = y.floats ?? []
        let plane = grid.plane
        let clamp = Float(model.info.constants.latentClamp)
        var levelSections: [[UInt8]] = []
        for i in 0..<l {
            let params = LevelParameters(networkOutput: try transforms.levelParameters(level: i, context: grid.context(forLevel: i)),
                                         scaleCount: model.info.constants.scaleCount)
            let base = i * model.levelChannels * plane
            var symbols = [Int32](repeating: 0, count: params.means.count)
            var latents = [Int32](repeating: 0, count: params.means.count)
            for k in 0..<symbols.count {
                let q = LatentQuantizer.symbol(latent: yValues[base + k], mean: params.means[k], clamp: clamp)
                symbols[k] = q
                latents[k] = LatentQuantizer.latent(symbol: q, mean: params.means[k])
            }
            grid.store(level: i, latents)
            levelSections.append(try LevelCoder.encode(symbols: symbols, tableIndexes: params.tableIndexes,
                                                       shape: LatentShape(channels: model.levelChannels, height: grid.height, width: grid.width),
                                                       tables: gaussianTables))
        }
        let header = StreamHeader(modelFingerprint: model.fingerprint, width: image.width, height: image.height,
                                  latentWidth: grid.width, latentHeight: grid.height,
                                  levelsPresent: l, levelsTotal: L, seed: seed)
        return try PSICStream.write(header: header, zSection: zSection, levelSections: levelSections)
    }
}

extension ImageCodec {
    // MARK: Decoding

    /// The integer latents a stream decodes to at `levels` (levels beyond those present, or
    /// beyond `levels`, are sampled with `seed`): `[C][h][w]` in units of 1/16. Identical on
    /// every backend; this is what cross-backend tests compare.
    public func decodeLatents(_ stream: [UInt8], levels: Int? = nil, seeds: [UInt64],
                              profile: CodecProfile? = nil) throws -> [Tensor] {
        let parsed = try PSICStream(bytes: stream, expectedFingerprint: model.fingerprint)
        let h = parsed.header
        guard h.levelsTotal == model.levels else {
            throw StreamError.corrupt(reason: "stream has \(h.levelsTotal) levels, the model \(model.levels)")
        }
        let l = min(levels ?? h.levelsPresent, h.levelsPresent)
        guard l >= 1 else { throw CodecError.invalidLevels(requested: levels ?? 0, available: 1...model.levels) }
        guard (1...64).contains(seeds.count) else { throw CodecError.invalidSampleCount(seeds.count) }
        let lh = h.latentHeight, lw = h.latentWidth
        let zShape = TensorShape(channels: model.zChannels, height: h.zHeight, width: h.zWidth)
        let zHat = Tensor(shape: zShape, ints: try profile.measure(\.entropySeconds) {
            try LevelCoder.decodeByChannel(parsed.zSection, shape: LatentShape(zShape), tables: zTables)
        })
        var grid = LatentGrid(hyper: try transforms.hyperSynthesize(zHat), levelChannels: model.levelChannels, levels: model.levels)
        guard grid.height == lh, grid.width == lw else {
            throw StreamError.corrupt(reason: "latent size \(lw)x\(lh) does not match z")
        }
        let levelShape = LatentShape(channels: model.levelChannels, height: lh, width: lw)
        for i in 0..<l {
            let params = try parameters(level: i, grid: grid)
            let symbols = try profile.measure(\.entropySeconds) {
                try LevelCoder.decode(parsed.levelSections[i], tableIndexes: params.tableIndexes,
                                      shape: levelShape, tables: gaussianTables)
            }
            grid.store(level: i, zip(symbols, params.means).map { LatentQuantizer.latent(symbol: $0, mean: $1) })
        }
        return try seeds.map { seed in
            var sampled = grid
            for i in l..<model.levels {
                let params = try parameters(level: i, grid: sampled)
                let symbols = try SynonymSampler.sampleLevel(tableIndexes: params.tableIndexes, shape: levelShape,
                                                             tables: gaussianTables, seed: seed, level: i)
                let values = zip(symbols, params.means).map { LatentQuantizer.latent(symbol: $0, mean: $1) }
                sampled.store(level: i, values)
            }
            return sampled.latents
        }
    }

    /// The sampling seed a stream carries (the encoder's choice; decoders may use any).
    public func streamSeed(_ stream: [UInt8]) throws -> UInt64 {
        try PSICStream.peekHeader(stream).seed
    }

    /// Decodes a stream to one image per seed (default: the stream's own seed).
    public func decode(_ stream: [UInt8], levels: Int? = nil, seeds: [UInt64]? = nil,
                       profile: CodecProfile? = nil) throws -> [RGBImage] {
        let header = try PSICStream.peekHeader(stream)
        let latents = try decodeLatents(stream, levels: levels, seeds: seeds ?? [header.seed], profile: profile)
        return try latents.map { y in
            let x = try transforms.synthesize(y)
            return RGBImage(planar: x.floats ?? [], planeWidth: x.shape.width, planeHeight: x.shape.height,
                            width: header.width, height: header.height)
        }
    }

    private func parameters(level i: Int, grid: LatentGrid) throws -> LevelParameters {
        LevelParameters(networkOutput: try transforms.levelParameters(level: i, context: grid.context(forLevel: i)),
                        scaleCount: model.info.constants.scaleCount)
    }
}
