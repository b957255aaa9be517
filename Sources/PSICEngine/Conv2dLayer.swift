/// A float 2-D convolution with zero padding, bias and a fused activation.
///
/// Weights are in PyTorch's `Conv2d` layout `[out][in][k][k]`. Output size is
/// `(H + 2*padding - k) / stride + 1` (floor), exactly as PyTorch computes it.
/// Layers are immutable reference types so backends can cache their uploaded weights by identity.
public final class Conv2dLayer: Sendable {
    public let name: String
    public let inChannels: Int
    public let outChannels: Int
    public let kernelSize: Int
    public let stride: Int
    public let padding: Int
    public let weights: [Float]
    public let bias: [Float]
    public let activation: Activation

    public init(name: String, inChannels: Int, outChannels: Int, kernelSize: Int, stride: Int,
                padding: Int? = nil, weights: [Float], bias: [Float],
                activation: Activation = .none) throws {
        self.name = name
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.kernelSize = kernelSize
        self.stride = stride
        self.padding = padding ?? kernelSize / 2
        self.weights = weights
        self.bias = bias
        self.activation = activation
        try LayerValidation.checkGeometry(name: name, inChannels: inChannels, outChannels: outChannels,
                                          kernelSize: kernelSize, stride: stride, padding: self.padding)
        try LayerValidation.checkCount(name: name, what: "weights", weights.count,
                                       outChannels * inChannels * kernelSize * kernelSize)
        try LayerValidation.checkCount(name: name, what: "bias", bias.count, outChannels)
    }

    /// Output shape for an input of `shape`, or nil if the input's channel count is wrong.
    public func outputShape(for shape: TensorShape) -> TensorShape? {
        guard shape.channels == inChannels else { return nil }
        let h = (shape.height + 2 * padding - kernelSize) / stride + 1
        let w = (shape.width + 2 * padding - kernelSize) / stride + 1
        guard h > 0, w > 0 else { return nil }
        return TensorShape(channels: outChannels, height: h, width: w)
    }
}
