import Foundation
import PSICImage

/// A deterministic test image with gradients, edges and texture, for benchmarks without a file.
public enum SyntheticImage {
    public static func make(width: Int, height: Int) -> RGBImage {
        var px = [UInt8](repeating: 0, count: width * height * 3)
        var state: UInt32 = 1
        for y in 0..<height {
            for x in 0..<width {
                state = state &* 1_664_525 &+ 1_013_904_223
                let noise = Int(state >> 28) - 8
                let o = (y * width + x) * 3
                let checker = ((x / 32) + (y / 32)) % 2 == 0 ? 40 : 0
                px[o] = UInt8(clamping: x * 255 / width + noise)
                px[o + 1] = UInt8(clamping: y * 255 / height + checker + noise)
                px[o + 2] = UInt8(clamping: 128 + Int(60 * sin(Double(x * y) / 2000)) + noise)
            }
        }
        return RGBImage(width: width, height: height, pixels: px)
    }
}
