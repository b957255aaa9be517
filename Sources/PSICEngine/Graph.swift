/// Identifies a tensor inside one `Graph`.
public struct TensorID: Hashable, Sendable, CustomStringConvertible {
    public let index: Int
    public var description: String { "t\(index)" }
}

/// Declaration of a graph tensor.
public struct TensorDeclaration: Sendable {
    public let name: String
    public let shape: TensorShape
    public let scalarType: ScalarType
    /// Graph inputs are supplied by the caller of `run`; the others are produced by nodes.
    public let isInput: Bool
}

/// A contiguous range of channels of a tensor. Because tensors are planar (CHW), a channel
/// range is a contiguous block of memory, so slicing and concatenation along channels need no copy:
/// a node reads a view and writes into a view of a larger tensor.
public struct TensorView: Hashable, Sendable {
    public let tensor: TensorID
    public let channelOffset: Int
    public let channels: Int

    public init(tensor: TensorID, channelOffset: Int, channels: Int) {
        self.tensor = tensor
        self.channelOffset = channelOffset
        self.channels = channels
    }
}

/// One operation of a graph.
public enum LayerOp: Sendable {
    case conv2d(Conv2dLayer)
    case convTranspose2d(ConvTranspose2dLayer)
    case gdn(GDNLayer)
    case intConv2d(IntConv2dLayer)

    public var name: String {
        switch self {
        case let .conv2d(l): return l.name
        case let .convTranspose2d(l): return l.name
        case let .gdn(l): return l.name
        case let .intConv2d(l): return l.name
        }
    }

    /// Type of both the input and the output.
    public var scalarType: ScalarType {
        if case .intConv2d = self { return .int32 }
        return .float32
    }

    /// Output shape for the given input shape, or nil when the input does not fit the layer.
    public func outputShape(for input: TensorShape) -> TensorShape? {
        switch self {
        case let .conv2d(l): return l.outputShape(for: input)
        case let .convTranspose2d(l): return l.outputShape(for: input)
        case let .gdn(l): return input.channels == l.channels ? input : nil
        case let .intConv2d(l): return l.outputShape(for: input)
        }
    }

    /// Arithmetic work of the op in FLOPs (2 per multiply-add; integer ops count the same way).
    public func flops(input: TensorShape, output: TensorShape) -> Double {
        switch self {
        case let .conv2d(l):
            return 2 * Double(output.count) * Double(l.inChannels * l.kernelSize * l.kernelSize)
        case let .convTranspose2d(l):
            return 2 * Double(input.count) * Double(l.outChannels * l.kernelSize * l.kernelSize)
        case let .gdn(l):
            return 2 * Double(input.planeSize) * Double(l.channels * l.channels)
        case let .intConv2d(l):
            if l.transposed { return 2 * Double(input.count) * Double(l.outChannels * l.kernelSize * l.kernelSize) }
            return 2 * Double(output.count) * Double(l.inChannels * l.kernelSize * l.kernelSize)
        }
    }
}

/// A node: an op reading one view and writing another.
public struct GraphNode: Sendable {
    public let op: LayerOp
    public let input: TensorView
    public let output: TensorView
    public let inputShape: TensorShape
    public let outputShape: TensorShape
}

/// A whole transform (a sequence of layers over tensors), recorded once and run by a backend.
///
/// Nodes run in the order they were appended. A backend may record them into one submission;
/// it inserts a barrier only where a node reads or overwrites what an earlier node wrote.
public struct Graph: Sendable {
    public private(set) var tensors: [TensorDeclaration] = []
    public private(set) var nodes: [GraphNode] = []
    /// Tensors whose contents `run` returns.
    public private(set) var outputs: [TensorID] = []

    public init() {}

    /// Bytes of the graph's largest tensor (what `Backend.maxTensorBytes` bounds).
    public var largestTensorBytes: Int {
        tensors.map { $0.shape.count * $0.scalarType.byteSize }.max() ?? 0
    }

    /// The graph's inputs, in declaration order.
    public var inputs: [TensorID] {
        tensors.indices.filter { tensors[$0].isInput }.map { TensorID(index: $0) }
    }

    /// Declares a tensor the caller supplies to `run`.
    public mutating func addInput(_ name: String, shape: TensorShape, type: ScalarType) -> TensorID {
        tensors.append(TensorDeclaration(name: name, shape: shape, scalarType: type, isInput: true))
        return TensorID(index: tensors.count - 1)
    }

    /// Declares an intermediate tensor that nodes write (e.g. a concatenation target).
    public mutating func addTensor(_ name: String, shape: TensorShape, type: ScalarType) -> TensorID {
        tensors.append(TensorDeclaration(name: name, shape: shape, scalarType: type, isInput: false))
        return TensorID(index: tensors.count - 1)
    }

    /// The view of all channels of `tensor`.
    public func whole(_ tensor: TensorID) -> TensorView {
        TensorView(tensor: tensor, channelOffset: 0, channels: tensors[tensor.index].shape.channels)
    }

    public func shape(of tensor: TensorID) -> TensorShape { tensors[tensor.index].shape }

    /// Appends `op` reading `input`. Writes into `output` when given (a channel range of an
    /// existing tensor: concatenation without a copy), else into a new tensor. Returns the view written.
    @discardableResult
    public mutating func append(_ op: LayerOp, input: TensorView, output: TensorView? = nil) throws -> TensorView {
        try checkView(input)
        let inDecl = tensors[input.tensor.index]
        let inShape = TensorShape(channels: input.channels, height: inDecl.shape.height, width: inDecl.shape.width)
        guard inDecl.scalarType == op.scalarType else {
            throw EngineError.shapeMismatch(node: op.name, expected: "\(op.scalarType) input", got: "\(inDecl.scalarType)")
        }
        guard let outShape = op.outputShape(for: inShape) else {
            throw EngineError.shapeMismatch(node: op.name, expected: "input fitting the layer", got: inShape.description)
        }
        let outView: TensorView
        if let output {
            try checkView(output)
            let decl = tensors[output.tensor.index]
            guard !decl.isInput else {
                throw EngineError.viewOutOfRange(tensor: decl.name, reason: "graph inputs are read-only")
            }
            guard decl.scalarType == op.scalarType, output.channels == outShape.channels,
                  decl.shape.height == outShape.height, decl.shape.width == outShape.width else {
                throw EngineError.shapeMismatch(node: op.name, expected: "output view \(outShape)",
                                                got: "\(output.channels)x\(decl.shape.height)x\(decl.shape.width)")
            }
            guard output.tensor != input.tensor else {
                throw EngineError.viewOutOfRange(tensor: decl.name, reason: "a node cannot write the tensor it reads")
            }
            outView = output
        } else {
            let id = addTensor(op.name, shape: outShape, type: op.scalarType)
            outView = whole(id)
        }
        nodes.append(GraphNode(op: op, input: input, output: outView, inputShape: inShape, outputShape: outShape))
        return outView
    }

    /// Marks a tensor as a result of `run`.
    public mutating func markOutput(_ tensor: TensorID) {
        if !outputs.contains(tensor) { outputs.append(tensor) }
    }

    private func checkView(_ view: TensorView) throws {
        guard view.tensor.index >= 0, view.tensor.index < tensors.count else {
            throw EngineError.viewOutOfRange(tensor: view.tensor.description, reason: "no such tensor")
        }
        let decl = tensors[view.tensor.index]
        guard view.channelOffset >= 0, view.channels > 0,
              view.channelOffset + view.channels <= decl.shape.channels else {
            throw EngineError.viewOutOfRange(tensor: decl.name,
                                             reason: "channels \(view.channelOffset)..<\(view.channelOffset + view.channels) of \(decl.shape.channels)")
        }
    }
}
