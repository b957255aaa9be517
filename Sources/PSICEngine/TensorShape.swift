/// The shape of one feature map in planar CHW order (batch is handled by running a graph
/// once per image, or by the caller stacking images along the channel-free outer loop).
///
/// Element `(c, y, x)` lives at `c * height * width + y * width + x`.
public struct TensorShape: Hashable, Sendable, CustomStringConvertible {
    public var channels: Int
    public var height: Int
    public var width: Int

    public init(channels: Int, height: Int, width: Int) {
        self.channels = channels
        self.height = height
        self.width = width
    }

    /// Number of elements in one channel plane.
    public var planeSize: Int { height * width }
    /// Total number of elements.
    public var count: Int { channels * height * width }

    public var description: String { "\(channels)x\(height)x\(width)" }
}
