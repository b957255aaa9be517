/// An integer 2-D convolution (or transposed convolution) of the entropy model.
///
/// Inputs are Int32 tensors whose values lie in `-inputBound...inputBound`; weights are
/// integers in Int16 range (the exporter uses Int8 range where that suffices); the
/// accumulator is Int32 and the initialiser proves it cannot overflow: for every output
/// channel `sum |w| * inputBound + |bias| < 2^31`. Geometry and weight layouts are those of
/// `Conv2dLayer` (`[out][in][k][k]`) or, when `transposed`, `ConvTranspose2dLayer` (`[in][out][k][k]`).
public final class IntConv2dLayer: Sendable {
    public let name: String
    public let transposed: Bool
    public let inChannels: Int
    public let outChannels: Int
    public let kernelSize: Int
    public let stride: Int
    public let padding: Int
    /// Only used when `transposed`.
    public let outputPadding: Int
    public let weights: [Int16]
    public let bias: [Int32]
    public let inputBound: Int32
    public let requantization: IntegerRequantization

    public init(name: String, transposed: Bool = false, inChannels: Int, outChannels: Int,
                kernelSize: Int, stride: Int, padding: Int? = nil, outputPadding: Int? = nil,
                weights: [Int16], bias: [Int32], inputBound: Int32,
                requantization: IntegerRequantization) throws {
        self.name = name
        self.transposed = transposed
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.kernelSize = kernelSize
        self.stride = stride
        self.padding = padding ?? kernelSize / 2
        self.outputPadding = transposed ? (outputPadding ?? stride - 1) : 0
        self.weights = weights
        self.bias = bias
        self.inputBound = inputBound
        self.requantization = requantization
        try LayerValidation.checkGeometry(name: name, inChannels: inChannels, outChannels: outChannels,
                                          kernelSize: kernelSize, stride: stride, padding: self.padding)
        try LayerValidation.checkCount(name: name, what: "weights", weights.count,
                                       outChannels * inChannels * kernelSize * kernelSize)
        try LayerValidation.checkCount(name: name, what: "bias", bias.count, outChannels)
        try requantization.validate(name: name, channels: outChannels)
        guard inputBound >= 0 else {
            throw EngineError.invalidLayer(name: name, reason: "inputBound must be non-negative")
        }
        let worst = Self.worstCaseAccumulator(transposed: transposed, inChannels: inChannels,
                                              outChannels: outChannels, kernelSize: kernelSize,
                                              weights: weights, bias: bias, inputBound: inputBound)
        guard worst < Int64(Int32.max) else { throw EngineError.accumulatorOverflow(layer: name, worstCase: worst) }
    }

    /// Largest `sum |w| * inputBound + |bias|` over output channels. It bounds every
    /// partial sum too, so no intermediate value of the accumulation can overflow.
    static func worstCaseAccumulator(transposed: Bool, inChannels: Int, outChannels: Int, kernelSize: Int,
                                     weights: [Int16], bias: [Int32], inputBound: Int32) -> Int64 {
        let kk = kernelSize * kernelSize
        var worst: Int64 = 0
        for co in 0..<outChannels {
            var sum: Int64 = 0
            for ci in 0..<inChannels {
                let base = transposed ? (ci * outChannels + co) * kk : (co * inChannels + ci) * kk
                for k in 0..<kk { sum += Int64(abs(Int32(weights[base + k]))) }
            }
            worst = max(worst, sum * Int64(inputBound) + Int64(abs(Int64(bias[co]))))
        }
        return worst
    }

    public func outputShape(for shape: TensorShape) -> TensorShape? {
        guard shape.channels == inChannels else { return nil }
        let h: Int, w: Int
        if transposed {
            h = (shape.height - 1) * stride - 2 * padding + kernelSize + outputPadding
            w = (shape.width - 1) * stride - 2 * padding + kernelSize + outputPadding
        } else {
            h = (shape.height + 2 * padding - kernelSize) / stride + 1
            w = (shape.width + 2 * padding - kernelSize) / stride + 1
        }
        guard h > 0, w > 0 else { return nil }
        return TensorShape(channels: outChannels, height: h, width: w)
    }
}
