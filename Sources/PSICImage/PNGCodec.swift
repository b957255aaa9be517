import CPNG

/// PNG reading and writing through libpng's simplified API.
///
/// Reading accepts every PNG libpng reads: 1/2/4/8/16-bit, gray, gray+alpha, palette, RGB, RGBA.
/// It always yields 8-bit sRGB: gray is expanded, 16-bit samples are reduced to 8 bits, and alpha
/// is composited onto white, because PSIC codes three colour channels and white is what viewers
/// show behind transparent areas. libpng honours the file's colour encoding (an `sRGB` chunk, or
/// `gAMA`: a linear-light file is converted to sRGB); a 16-bit file with neither is taken as
/// sRGB-encoded, as nearly all are, not as the linear light libpng would otherwise assume.
public enum PNGCodec {
    /// Default maximum number of pixels accepted by `decode` (about 268 megapixels).
    public static let defaultMaxPixels = 1 << 28

    /// Decodes a PNG file's bytes. Throws `ImageError.tooLarge` before allocating pixel memory
    /// when the header announces more than `maxPixels` pixels.
    public static func decode(_ data: [UInt8], maxPixels: Int = defaultMaxPixels) throws -> RGBImage {
        // libpng's own words for no bytes are "invalid argument", which reads like a bug in psic.
        guard !data.isEmpty else { throw ImageError.notPNG(reason: "the file is empty") }
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        let begun = data.withUnsafeBytes { raw in
            png_image_begin_read_from_memory(&image, raw.baseAddress, raw.count)
        }
        guard begun != 0 else { throw ImageError.notPNG(reason: message(of: &image)) }
        defer { png_image_free(&image) }
        let width = Int(image.width), height = Int(image.height)
        guard width > 0, height > 0, width <= 1 << 20, height <= 1 << 20, width * height <= maxPixels else {
            throw ImageError.tooLarge(width: width, height: height, maxPixels: maxPixels)
        }
        // Deflate expands at most ~1032:1, so a file far smaller than its declared rows cannot
        // hold them: refuse it before allocating the pixels (a 69-byte file declaring 16384²
        // would otherwise take 800 MB first and fail after).
        if let raw = declaredRowBytes(data), raw > data.count * maxDeflateRatio {
            throw ImageError.notPNG(reason: "declares \(width)x\(height) pixels, \(raw) bytes of rows, but the file has only "
                                    + "\(data.count) bytes: it is truncated or corrupt")
        }
        // Without this flag an untagged 16-bit file counts as linear light and comes out brightened.
        image.flags |= UInt32(PNG_IMAGE_FLAG_16BIT_sRGB)
        image.format = UInt32(PNG_FORMAT_RGB)
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        var white = png_color(red: 255, green: 255, blue: 255)
        let ok = pixels.withUnsafeMutableBytes { dst in
            data.withUnsafeBytes { _ in
                png_image_finish_read(&image, &white, dst.baseAddress, Int32(width * 3), nil)
            }
        }
        guard ok != 0 else { throw ImageError.notPNG(reason: message(of: &image)) }
        return RGBImage(width: width, height: height, pixels: pixels)
    }

    /// The most a deflate stream expands (258-byte matches from 2-bit codes), with a margin.
    private static let maxDeflateRatio = 1100

    /// Bytes of the filtered rows the IHDR chunk announces (before compression), or nil when the
    /// header is not where a PNG has it (libpng has read it already; this only bounds memory).
    private static func declaredRowBytes(_ data: [UInt8]) -> Int? {
        guard data.count >= 29, Array(data[12..<16]) == Array("IHDR".utf8) else { return nil }
        func be32(_ o: Int) -> Int { data[o..<(o + 4)].reduce(0) { $0 << 8 | Int($1) } }
        let width = be32(16), height = be32(20), depth = Int(data[24])
        let channels: Int
        switch data[25] {
        case 0, 3: channels = 1   // gray, palette
        case 2: channels = 3
        case 4: channels = 2
        case 6: channels = 4
        default: return nil
        }
        return height * (1 + (width * channels * depth + 7) / 8)
    }

    /// Encodes an 8-bit RGB PNG.
    public static func encode(_ img: RGBImage) throws -> [UInt8] {
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        image.width = UInt32(img.width)
        image.height = UInt32(img.height)
        image.format = UInt32(PNG_FORMAT_RGB)
        let stride = Int32(img.width * 3)
        // One compression pass into a buffer that cannot be too small (libpng's own bound:
        // PNG_IMAGE_PNG_SIZE_MAX, a macro Swift does not import). Asking libpng for the size first
        // (a nil buffer) compresses the whole image once more: that was a quarter of `psic decode`.
        let raw = img.height * (img.width * 3 + 1)
        let deflateBound = raw + (raw + 7) >> 3 + (raw + 63) >> 6 + 11
        var capacity = deflateBound + 12 * (deflateBound >> 31 + 1) + 4096
        for _ in 0..<2 {
            var out = [UInt8](repeating: 0, count: capacity)
            var size = png_alloc_size_t(capacity)
            let ok = out.withUnsafeMutableBytes { dst in
                img.pixels.withUnsafeBytes { src in
                    png_image_write_to_memory(&image, dst.baseAddress, &size, 0, src.baseAddress, stride, nil)
                }
            }
            if ok != 0 {
                out.removeLast(out.count - Int(size))
                return out
            }
            // A failed write that changed the size means the buffer was too small: retry once.
            guard Int(size) > capacity else { break }
            capacity = Int(size)
            png_image_free(&image)
        }
        throw ImageError.encodeFailed(reason: message(of: &image))
    }

    private static func message(of image: inout png_image) -> String {
        withUnsafeBytes(of: &image.message) { raw in
            let bytes = raw.prefix { $0 != 0 }
            return String(decoding: bytes, as: UTF8.self)
        }
    }
}
