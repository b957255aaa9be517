/// Errors reading or writing images.
public enum ImageError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The bytes are not a PNG file libpng can read.
    case notPNG(reason: String)
    /// The image has more pixels (or a longer side) than allowed.
    case tooLarge(width: Int, height: Int, maxPixels: Int)
    /// libpng failed while encoding.
    case encodeFailed(reason: String)

    public var description: String {
        switch self {
        case let .notPNG(reason): return "not a readable PNG image (\(reason))"
        case let .tooLarge(w, h, maxPixels):
            return "image is \(w)x\(h) pixels, more than the limit of \(maxPixels); raise the limit or downscale the image"
        case let .encodeFailed(reason): return "PNG encoding failed: \(reason)"
        }
    }
}
