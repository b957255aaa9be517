/// An 8-bit sRGB image with interleaved RGB samples, rows top to bottom.
public struct RGBImage: Sendable, Equatable {
    public let width: Int
    public let height: Int
    /// `width * height * 3` samples: R, G, B of pixel (0,0), then (1,0), ...
    public var pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(width > 0 && height > 0 && pixels.count == width * height * 3,
                     "pixel count must be width*height*3")
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// Planar float samples in `[0, 1]`, `[3][paddedHeight][paddedWidth]`, padded on the right
    /// and bottom by repeating the last column/row. Replication (rather than zeros) keeps the
    /// padding cheap to code and avoids a dark seam leaking into the visible border.
    public func planarFloats(paddedWidth: Int, paddedHeight: Int) -> [Float] {
        precondition(paddedWidth >= width && paddedHeight >= height)
        let plane = paddedWidth * paddedHeight
        var out = [Float](repeating: 0, count: 3 * plane)
        let scale: Float = 1.0 / 255.0
        out.withUnsafeMutableBufferPointer { dst in
            pixels.withUnsafeBufferPointer { src in
                for y in 0..<paddedHeight {
                    let sy = min(y, height - 1)
                    for x in 0..<paddedWidth {
                        let s = (sy * width + min(x, width - 1)) * 3
                        let d = y * paddedWidth + x
                        dst[d] = Float(src[s]) * scale
                        dst[plane + d] = Float(src[s + 1]) * scale
                        dst[2 * plane + d] = Float(src[s + 2]) * scale
                    }
                }
            }
        }
        return out
    }

    /// Builds an image from planar float samples (`[3][planeHeight][planeWidth]`, nominally
    /// `[0, 1]`), cropping to `width x height` and rounding with saturation.
    public init(planar: [Float], planeWidth: Int, planeHeight: Int, width: Int, height: Int) {
        precondition(planar.count == 3 * planeWidth * planeHeight && width <= planeWidth && height <= planeHeight)
        let plane = planeWidth * planeHeight
        var px = [UInt8](repeating: 0, count: width * height * 3)
        for y in 0..<height {
            for x in 0..<width {
                let s = y * planeWidth + x
                let d = (y * width + x) * 3
                for c in 0..<3 {
                    let v = planar[c * plane + s] * 255 + 0.5
                    px[d + c] = v.isNaN ? 0 : UInt8(min(max(v, 0), 255))
                }
            }
        }
        self.init(width: width, height: height, pixels: px)
    }
}
