import PSICEntropy
import PSICImage

/// One image of `ImageCodec.encodeBatch(targeting:)`.
public struct QualityRequest: Sendable {
    /// The image to compress.
    public var image: RGBImage
    /// The smallest PSNR in dB the stream's decode must reach.
    public var minimumPSNR: Double
    /// The sampling seed the stream carries (and its decode uses).
    public var seed: UInt64
    /// The stream format version to write (see `EncodeRequest.formatVersion`).
    public var formatVersion: UInt16
    /// How latents become symbols (see `EncodeRequest.quantization`).
    public var quantization: Quantization

    public init(image: RGBImage, minimumPSNR: Double, seed: UInt64 = 0, formatVersion: UInt16 = PSICStream.formatVersion,
                quantization: Quantization = .modelDefault) {
        self.image = image
        self.minimumPSNR = minimumPSNR
        self.seed = seed
        self.formatVersion = formatVersion
        self.quantization = quantization
    }
}

/// What a quality-targeted encode chose for one image.
public struct QualityTargetedStream: Sendable {
    /// The stream: the fewest levels whose decode reaches the target, or every level.
    public let stream: [UInt8]
    /// Levels the stream carries.
    public let levels: Int
    /// PSNR in dB of the stream's decode (`decode(stream)`: its own seed, sampled details).
    public let psnr: Double
    /// False when even every level stays under the target; the stream then carries them all.
    public let reached: Bool
}

/// The bisection over one stream's cuts: which cut to decode next, and what the answer is
/// once the measured PSNRs settle it. It takes the PSNR to grow with the level (for the
/// shipped models each level has added about 1 dB or more on every Kodak image; every
/// Tools/eval sweep re-checks it and states the smallest gain in docs/results.md), and measures
/// every level it returns, so the answer always reaches the target even where that assumption
/// failed (it could then be a level more than needed, never a level short).
struct LevelSearch {
    let target: Double
    let allLevels: Int
    private(set) var measured: [Int: Double] = [:]
    /// The answer lies in `low...high` once every level is known to reach the target.
    private var low = 1, high: Int

    init(target: Double, allLevels: Int) {
        self.target = target
        self.allLevels = allLevels
        high = allLevels
    }

    /// The cut to decode next; nil when the search is over.
    var nextProbe: Int? {
        guard let all = measured[allLevels] else { return allLevels }
        guard all >= target, low < high else { return nil }
        return (low + high) / 2
    }

    mutating func record(levels: Int, psnr: Double) {
        measured[levels] = psnr
        guard levels < allLevels else { return }
        if psnr >= target { high = levels } else { low = levels + 1 }
    }

    /// The levels chosen, their PSNR and whether they reach the target; after the search.
    var outcome: (levels: Int, psnr: Double, reached: Bool) {
        let all = measured[allLevels] ?? -.infinity
        guard all >= target, let p = measured[high] else { return (allLevels, all, false) }
        return (high, p, true)
    }
}

extension ImageCodec {
    /// Compresses `image` into the fewest levels whose decode, as `decode(_:)` gives it on this
    /// backend (the stream's seed, sampled details), reaches `minimumPSNR` dB. See
    /// `encodeBatch(targeting:)` for how.
    public func encode(_ image: RGBImage, minimumPSNR: Double, seed: UInt64 = 0,
                       formatVersion: UInt16 = PSICStream.formatVersion, quantization: Quantization = .modelDefault,
                       profile: CodecProfile? = nil) throws -> QualityTargetedStream {
        try encodeBatch(targeting: [QualityRequest(image: image, minimumPSNR: minimumPSNR, seed: seed, formatVersion: formatVersion,
                                                   quantization: quantization)],
                        profile: profile)[0].get()
    }

    /// Compresses each image into the fewest levels whose decode reaches its PSNR target.
    ///
    /// All levels are coded once (one `encodeBatch`); then the cuts are decoded and measured by
    /// bisection, one cut per image per round, each round one `decodeBatch`: at most
    /// 1 + log2(L) rounds (4 for 8 levels), so this costs several times a plain encode. The PSNR
    /// reported is the measured one, never an estimate. An image fails alone.
    public func encodeBatch(targeting requests: [QualityRequest], profile: CodecProfile? = nil) -> [Result<QualityTargetedStream, Error>] {
        var results = [Result<QualityTargetedStream, Error>?](repeating: nil, count: requests.count)
        for (k, r) in requests.enumerated() where !r.minimumPSNR.isFinite {
            results[k] = .failure(CodecError.invalidQualityTarget(r.minimumPSNR))
        }
        let todo = requests.indices.filter { results[$0] == nil }
        let streams = encodeBatch(todo.map { EncodeRequest(image: requests[$0].image, seed: requests[$0].seed,
                                                               formatVersion: requests[$0].formatVersion,
                                                               quantization: requests[$0].quantization) }, profile: profile)
        var searches: [Int: (parsed: PSICStream, search: LevelSearch)] = [:]
        for (k, s) in zip(todo, streams) {
            do {
                let parsed = try PSICStream(bytes: try s.get())
                searches[k] = (parsed, LevelSearch(target: requests[k].minimumPSNR, allLevels: parsed.header.levelsPresent))
            } catch {
                results[k] = .failure(error)
            }
        }
        while true {
            var round: [(k: Int, levels: Int, stream: [UInt8])] = []
            for k in searches.keys.sorted() {
                let (parsed, search) = searches[k]!
                guard let probe = search.nextProbe else {
                    let o = search.outcome
                    results[k] = Result { QualityTargetedStream(stream: try parsed.truncated(toLevels: o.levels), levels: o.levels, psnr: o.psnr, reached: o.reached) }
                    searches[k] = nil
                    continue
                }
                do { round.append((k, probe, try parsed.truncated(toLevels: probe))) } catch {
                    results[k] = .failure(error)
                    searches[k] = nil
                }
            }
            if round.isEmpty { break }
            let decoded = decodeBatch(round.map { DecodeRequest(stream: $0.stream) }, profile: profile)
            for (probe, d) in zip(round, decoded) {
                do {
                    searches[probe.k]!.search.record(levels: probe.levels, psnr: try d.get()[0].psnr(to: requests[probe.k].image))
                } catch {
                    results[probe.k] = .failure(error)
                    searches[probe.k] = nil
                }
            }
        }
        return results.map { $0! }
    }
}
