import Foundation

extension RGBImage {
    /// Peak signal-to-noise ratio against `other` in dB, over every 8-bit sample of the three
    /// channels (one MSE for the image, as Tools/eval computes it per image); `.infinity` when
    /// the images are equal. Both images must have the same size.
    public func psnr(to other: RGBImage) -> Double {
        precondition(width == other.width && height == other.height, "PSNR of images of different sizes")
        var squaredError = 0.0
        for (a, b) in zip(pixels, other.pixels) {
            let d = Double(a) - Double(b)
            squaredError += d * d
        }
        let mse = squaredError / Double(max(pixels.count, 1))
        return mse == 0 ? .infinity : 10 * log10(255 * 255 / mse)
    }
}
