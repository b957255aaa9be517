/// Errors of encoding and decoding that are not the engine's, the model's or the stream's own.
public enum CodecError: Error, Sendable, Equatable, CustomStringConvertible {
    /// `levels` outside `1...L` of the model.
    case invalidLevels(requested: Int, available: ClosedRange<Int>)
    /// The image is larger than the codec accepts.
    case imageTooLarge(width: Int, height: Int, limit: Int)
    /// A stream asked for more samples than allowed in one call.
    case invalidSampleCount(Int)
    /// The stream carries no level (the format allows it: only z), so there is nothing to
    /// decode from.
    case noLevelsInStream
    /// Not even the first level fits the stream size asked for (`EncodeRequest.maxBytes`).
    case budgetTooSmall(maxBytes: Int, smallest: Int)
    /// A quality target that is not a finite number.
    case invalidQualityTarget(Double)
    /// The image's own buffers (planes, latents; one set per seed of a decode) need more memory
    /// than is free, so the work is refused before it starts.
    case insufficientMemory(width: Int, height: Int, neededBytes: Int, availableBytes: Int)
    /// A rate-distortion λ that is not a finite number above 0 (`Quantization.rateDistortion`).
    case invalidRateDistortionLambda(Double)
    /// A stream format version this code cannot write (`EncodeRequest.formatVersion`).
    case unsupportedFormatVersion(UInt16, supported: ClosedRange<UInt16>)
    /// A detail spread outside `DecodeRequest.detailSpreadRange`.
    case invalidDetailSpread(Int, allowed: ClosedRange<Int>)
    /// A detail spread other than 0 with `DetailMode.mean`, which samples nothing to widen.
    case detailSpreadWithMeanDetails

    public var description: String {
        switch self {
        case let .invalidLevels(r, a): return "levels \(r) is outside \(a.lowerBound)...\(a.upperBound) for this model"
        case let .imageTooLarge(w, h, limit):
            return "image \(w)x\(h) exceeds the limit of \(limit) pixels per side; split it into tiles"
        case let .invalidSampleCount(n): return "sample count \(n) must be in 1...64"
        case .noLevelsInStream: return "the stream carries no level (only its hyperprior); decoding needs at least one"
        case let .budgetTooSmall(maxBytes, smallest):
            return "a stream of this image needs at least \(smallest) bytes (one level); the limit is \(maxBytes)"
        case let .invalidQualityTarget(v): return "quality target \(v) is not a finite number of dB"
        case let .insufficientMemory(w, h, needed, available):
            return "a \(w)x\(h) image needs about \(needed >> 20) MiB for its buffers and \(available >> 20) MiB is free"
                + " (a container's limit counts; a decode needs them once per sample): free memory or use a larger machine"
        case let .invalidRateDistortionLambda(v):
            return "rate-distortion lambda \(v) must be a finite number above 0 (use nearest rounding to turn it off)"
        case let .unsupportedFormatVersion(v, supported):
            return "stream format version \(v) cannot be written; choose one of \(supported.lowerBound)...\(supported.upperBound)"
        case let .invalidDetailSpread(v, allowed):
            return "detail spread \(v) is outside \(allowed.lowerBound)...\(allowed.upperBound) steps of the scale table"
        case .detailSpreadWithMeanDetails:
            return "a detail spread widens sampled details; mean details sample nothing (use sampled or calibrated details, or spread 0)"
        }
    }
}
