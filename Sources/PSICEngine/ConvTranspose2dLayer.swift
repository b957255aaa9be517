/// A float 2-D transposed convolution ("deconvolution") with bias and a fused activation.
///
/// Weights are in PyTorch's `ConvTranspose2d` layout `[in][out][k][k]`. Output size is
/// `(H - 1) * stride - 2 * padding + k + outputPadding`, as in PyTorch. Input pixel `(iy, ix)`
/// contributes to output pixel `(iy * stride - padding + ky, ix * stride - padding + kx)`.
public final class ConvTranspose2dLayer: Sendable {
    public let name: String
    public let inChannels: Int
    public let outChannels: Int
    public let kernelSize: Int
    public let stride: Int
    public let padding: Int
    public let outputPadding: Int
    public let weights: [Float]
    public let bias: [Float]
    public let activation: Activation

    /// Defaults reproduce CompressAI's `deconv`: `padding = k/2`, `outputPadding = stride - 1`,
    /// so a stride-2 layer exactly doubles the size.
    public init(name: String, inChannels: Int, outChannels: Int, kernelSize: Int, stride: Int,
                padding: Int? = nil, outputPadding: Int? = nil, weights: [Float], bias: [Float],
                activation: Activation = .none) throws {
        self.name = name
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.kernelSize = kernelSize
        self.stride = stride
        self.padding = padding ?? kernelSize / 2
        self.outputPadding = outputPadding ?? stride - 1
        self.weights = weights
        self.bias = bias
        self.activation = activation
        try LayerValidation.checkGeometry(name: name, inChannels: inChannels, outChannels: outChannels,
                                          kernelSize: kernelSize, stride: stride, padding: self.padding)
        guard self.outputPadding >= 0, self.outputPadding < stride else {
            throw EngineError.invalidLayer(name: name, reason: "outputPadding must be in 0..<stride")
        }
        try LayerValidation.checkCount(name: name, what: "weights", weights.count,
                                       inChannels * outChannels * kernelSize * kernelSize)
        try LayerValidation.checkCount(name: name, what: "bias", bias.count, outChannels)
    }

    /// The kernel taps (ascending, along one axis) that reach the output pixels of phase `r`
    /// (those at `r + stride * q`): output `o` takes input `i` through tap `t` when
    /// `o + padding = i * stride + t`, so phase `r` reads the taps `t = (r + padding) mod stride
    /// + stride * j`. Every backend that splits a strided transposed convolution into its
    /// output phases takes the split from here.
    public func phaseTaps(_ r: Int) -> [Int] {
        Self.phaseTaps(r, kernelSize: kernelSize, stride: stride, padding: padding)
    }

    /// `phaseTaps(_:)` for a layer of this geometry.
    public static func phaseTaps(_ r: Int, kernelSize: Int, stride: Int, padding: Int) -> [Int] {
        Array(Swift.stride(from: (r + padding) % stride, to: kernelSize, by: stride))
    }

    public func outputShape(for shape: TensorShape) -> TensorShape? {
        guard shape.channels == inChannels else { return nil }
        let h = (shape.height - 1) * stride - 2 * padding + kernelSize + outputPadding
        let w = (shape.width - 1) * stride - 2 * padding + kernelSize + outputPadding
        guard h > 0, w > 0 else { return nil }
        return TensorShape(channels: outChannels, height: h, width: w)
    }
}
