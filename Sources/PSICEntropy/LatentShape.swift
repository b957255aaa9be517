/// Size of a CHW block of latent symbols: one level (C/L channels) or z.
public struct LatentShape: Sendable, Hashable {
    /// Most symbols one call may code (2^28): bounds every allocation the coder makes.
    public static let maxCount = 1 << 28

    public var channels: Int
    public var height: Int
    public var width: Int

    public init(channels: Int, height: Int, width: Int) {
        self.channels = channels
        self.height = height
        self.width = width
    }

    /// Number of elements, `channels · height · width`.
    public var count: Int { channels * height * width }

    var isValid: Bool {
        channels >= 1 && height >= 1 && width >= 1
            && channels <= Self.maxCount && height <= Self.maxCount && width <= Self.maxCount
            && channels.multipliedReportingOverflow(by: height * width).partialValue <= Self.maxCount
            && height * width <= Self.maxCount
    }
}
