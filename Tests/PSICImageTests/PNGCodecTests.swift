import Foundation
import Testing
@testable import PSICImage

private let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

private func fixture(_ name: String) throws -> [UInt8] {
    [UInt8](try Data(contentsOf: fixtures.appendingPathComponent(name)))
}

private func pixel(_ img: RGBImage, _ x: Int, _ y: Int) -> [UInt8] {
    let o = (y * img.width + x) * 3
    return Array(img.pixels[o..<(o + 3)])
}

@Suite struct PNGCodecTests {
    @Test func readsRGB8Exactly() throws {
        let img = try PNGCodec.decode(try fixture("rgb8.png"))
        #expect(img.width == 17 && img.height == 13)
        // Values written by the fixture generator (PIL), read back independently.
        #expect(pixel(img, 0, 0) == [207, 21, 45])
        #expect(pixel(img, 16, 12) == [176, 106, 175])
        #expect(pixel(img, 3, 5) == [42, 149, 180])
    }

    @Test func roundTripIsLossless() throws {
        let img = try PNGCodec.decode(try fixture("rgb8.png"))
        let again = try PNGCodec.decode(try PNGCodec.encode(img))
        #expect(again == img)
    }

    @Test func grayExpandsToRGB() throws {
        let rgb = try PNGCodec.decode(try fixture("rgb8.png"))
        let gray = try PNGCodec.decode(try fixture("gray8.png"))
        for y in 0..<13 {
            for x in 0..<17 {
                let g = pixel(gray, x, y)
                #expect(g[0] == g[1] && g[1] == g[2])
                #expect(g[0] == pixel(rgb, x, y)[0])
            }
        }
    }

    @Test func sixteenBitGrayReducesToEightBits() throws {
        // gray16.png holds v * 257 for the 8-bit values v of gray8.png: reduction must give v back.
        let g8 = try PNGCodec.decode(try fixture("gray8.png"))
        let g16 = try PNGCodec.decode(try fixture("gray16.png"))
        #expect(g16.pixels.elementsEqual(g8.pixels), "first pixels: \(g16.pixels.prefix(6)) vs \(g8.pixels.prefix(6))")
    }

    /// The file's colour encoding counts: an sRGB-tagged 16-bit file reduces like an untagged one,
    /// and a linear-light one (gAMA 1.0) is converted to sRGB, not taken as sRGB values.
    @Test func sixteenBitFilesFollowTheirColourEncoding() throws {
        let tagged = try PNGCodec.decode(try fixture("gray16-srgb.png"))  // v * 257 for v = 8x + y
        #expect(tagged.width == 32 && tagged.height == 8)
        for y in 0..<8 {
            for x in 0..<32 { #expect(pixel(tagged, x, y) == Array(repeating: UInt8(8 * x + y), count: 3)) }
        }
        let linear = try PNGCodec.decode(try fixture("rgb16-linear.png"))
        // libpng encodes "sRGB" as the power 1/2.2: linear 0.5 → 0.7297 (186.1), 0.25 → 0.5325 (135.8).
        // Taken as sRGB values instead they would read 128 and 64.
        #expect(pixel(linear, 0, 0) == [186, 0, 255])
        #expect(pixel(linear, 1, 0) == [255, 255, 255])
        #expect(pixel(linear, 2, 0) == [0, 0, 0])
        #expect(pixel(linear, 3, 0) == [186, 186, 186])
        #expect(pixel(linear, 0, 1) == [136, 136, 136])
    }

    @Test func alphaIsCompositedOntoWhite() throws {
        let rgb = try PNGCodec.decode(try fixture("rgb8.png"))
        let rgba = try PNGCodec.decode(try fixture("rgba8.png"))
        for y in 0..<13 {
            for x in 0..<17 {
                #expect(pixel(rgba, x, y) == (x < 8 ? pixel(rgb, x, y) : [255, 255, 255]))
            }
        }
    }

    @Test func readsPalette() throws {
        let img = try PNGCodec.decode(try fixture("palette.png"))
        #expect(pixel(img, 0, 0) == [174, 19, 132])
        #expect(pixel(img, 16, 12) == [175, 56, 163])
    }

    @Test func rejectsTruncatedAndRandomBytes() throws {
        #expect(throws: ImageError.self) { try PNGCodec.decode(try fixture("truncated.png")) }
        var rng = SystemRandomNumberGenerator()
        for n in [0, 1, 8, 100, 5000] {
            let junk = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
            #expect(throws: ImageError.self) { try PNGCodec.decode(junk) }
        }
        #expect(throws: ImageError.notPNG(reason: "the file is empty")) { try PNGCodec.decode([]) }
    }

    /// A tiny file declaring a huge image is refused from its header, before the pixels are
    /// allocated: its rows cannot fit in so few compressed bytes.
    @Test func rejectsFilesTooSmallForTheirDeclaredSize() throws {
        var png = try fixture("rgb8.png")
        // IHDR width and height (bytes 16...23) → 16384 x 16384, with the chunk's CRC redone.
        for (o, v) in [(16, 16384), (20, 16384)] { for k in 0..<4 { png[o + k] = UInt8((v >> (24 - 8 * k)) & 255) } }
        let crc = crc32(png[12..<29])
        for k in 0..<4 { png[29 + k] = UInt8((crc >> (24 - 8 * k)) & 255) }
        #expect(throws: ImageError.self) { try PNGCodec.decode(png) }
        do { _ = try PNGCodec.decode(png) } catch { #expect("\(error)".contains("truncated or corrupt"), "\(error)") }
    }

    @Test func rejectsImagesOverThePixelLimitBeforeDecoding() throws {
        #expect(throws: ImageError.tooLarge(width: 17, height: 13, maxPixels: 100)) {
            try PNGCodec.decode(try fixture("rgb8.png"), maxPixels: 100)
        }
    }

    @Test func planarPaddingReplicatesEdges() {
        let img = RGBImage(width: 2, height: 1, pixels: [0, 51, 102, 255, 204, 153])
        let p = img.planarFloats(paddedWidth: 4, paddedHeight: 2)
        // Red plane: row 0 = [0, 1, 1, 1], row 1 repeats row 0.
        #expect(Array(p[0..<8]) == [0, 1, 1, 1, 0, 1, 1, 1])
        let back = RGBImage(planar: p, planeWidth: 4, planeHeight: 2, width: 2, height: 1)
        #expect(back == img)
    }
}

/// CRC-32 of PNG chunks (ISO 3309), for fixtures edited in place.
private func crc32(_ bytes: ArraySlice<UInt8>) -> UInt32 {
    var c: UInt32 = 0xFFFF_FFFF
    for b in bytes {
        c ^= UInt32(b)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
    }
    return ~c
}
