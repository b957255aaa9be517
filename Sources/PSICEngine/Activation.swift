/// An activation fused into the convolution that precedes it.
public enum Activation: Sendable, Hashable {
    case none
    case relu
    /// `x < 0 ? slope * x : x`. For integer layers the slope must be `k / 256` for an
    /// integer `k` in `0...256` (see `IntegerRequantization`).
    case leakyReLU(slope: Float)
}
