import CPNG

/// PNG reading and writing through libpng's simplified API.
///
/// Reading accepts every PNG libpng reads: 1/2/4/8/16-bit, gray, gray+alpha, palette, RGB, RGBA.
/// It always yields 8-bit sRGB RGB: gray is expanded, 16-bit samples are reduced to 8 bits by
/// libpng (with its sRGB handling), and alpha is composited onto white, because PSIC codes
/// three colour channels and a white background is what viewers show for transparent areas.
public enum PNGCodec {
    /// Default maximum number of pixels accepted by `decode` (about 268 megapixels).
    public static let defaultMaxPixels = 1 << 28

    /// Decodes a PNG file's bytes. Throws `ImageError.tooLarge` before allocating pixel memory
    /// when the header announces more than `maxPixels` pixels.
    public static func decode(_ data: [UInt8], maxPixels: Int = defaultMaxPixels) throws -> RGBImage {
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

    /// Encodes an 8-bit RGB PNG.
    public static func encode(_ img: RGBImage) throws -> [UInt8] {
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        image.width = UInt32(img.width)
        image.height = UInt32(img.height)
        image.format = UInt32(PNG_FORMAT_RGB)
        var size: png_alloc_size_t = 0
        let stride = Int32(img.width * 3)
        let probe = img.pixels.withUnsafeBytes { src in
            png_image_write_to_memory(&image, nil, &size, 0, src.baseAddress, stride, nil)
        }
        guard probe != 0, size > 0 else { throw ImageError.encodeFailed(reason: message(of: &image)) }
        var out = [UInt8](repeating: 0, count: Int(size))
        let ok = out.withUnsafeMutableBytes { dst in
            img.pixels.withUnsafeBytes { src in
                png_image_write_to_memory(&image, dst.baseAddress, &size, 0, src.baseAddress, stride, nil)
            }
        }
        guard ok != 0 else { throw ImageError.encodeFailed(reason: message(of: &image)) }
        out.removeLast(out.count - Int(size))
        return out
    }

    private static func message(of image: inout png_image) -> String {
        withUnsafeBytes(of: &image.message) { raw in
            let bytes = raw.prefix { $0 != 0 }
            return String(decoding: bytes, as: UTF8.self)
        }
    }
}
