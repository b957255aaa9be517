import PSICEntropy
import PSICImage

/// What `ImageCodec.encode(_:minimumPSNR:seed:)` chose for one image.
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

extension ImageCodec {
    /// Compresses `image` into the fewest levels whose decode, as `decode(_:)` gives it on this
    /// backend (the stream's seed, sampled details), reaches `minimumPSNR` dB.
    ///
    /// All levels are coded once; the cuts are decoded and measured by bisection, which takes
    /// the PSNR to grow with the level (for the shipped model each level adds 1.0 dB or more on
    /// every Kodak image, `out/eval/per_image.csv` of the step-40243 sweep). That is at most
    /// 1 + log2(L) decodes (4 for 8 levels), so this costs several times a plain encode. The
    /// PSNR reported is the measured one, never an estimate.
    public func encode(_ image: RGBImage, minimumPSNR: Double, seed: UInt64 = 0) throws -> QualityTargetedStream {
        guard minimumPSNR.isFinite else { throw CodecError.invalidQualityTarget(minimumPSNR) }
        let stream = try encode(image, seed: seed)
        let parsed = try PSICStream(bytes: stream)
        let all = parsed.header.levelsPresent
        var measured: [Int: Double] = [:]
        func psnr(_ levels: Int) throws -> Double {
            if let p = measured[levels] { return p }
            let cut = levels == all ? stream : try parsed.truncated(toLevels: levels)
            let p = try decode(cut)[0].psnr(to: image)
            measured[levels] = p
            return p
        }
        guard try psnr(all) >= minimumPSNR else {
            return QualityTargetedStream(stream: stream, levels: all, psnr: try psnr(all), reached: false)
        }
        var low = 1, high = all   // the answer lies in low...high; high always reaches the target
        while low < high {
            let mid = (low + high) / 2
            if try psnr(mid) >= minimumPSNR { high = mid } else { low = mid + 1 }
        }
        let cut = high == all ? stream : try parsed.truncated(toLevels: high)
        return QualityTargetedStream(stream: cut, levels: high, psnr: try psnr(high), reached: true)
    }
}
