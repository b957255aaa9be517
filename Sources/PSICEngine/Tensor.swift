/// A host-side tensor: a shape and its elements in CHW order.
public struct Tensor: Sendable, Equatable {
    public enum Storage: Sendable, Equatable {
        case float32([Float])
        case int32([Int32])
    }

    public var shape: TensorShape
    public var storage: Storage

    public init(shape: TensorShape, floats: [Float]) {
        precondition(floats.count == shape.count, "element count does not match shape \(shape)")
        self.shape = shape
        self.storage = .float32(floats)
    }

    public init(shape: TensorShape, ints: [Int32]) {
        precondition(ints.count == shape.count, "element count does not match shape \(shape)")
        self.shape = shape
        self.storage = .int32(ints)
    }

    public var scalarType: ScalarType {
        switch storage {
        case .float32: return .float32
        case .int32: return .int32
        }
    }

    /// The elements if this is a float tensor.
    public var floats: [Float]? {
        if case let .float32(v) = storage { return v }
        return nil
    }

    /// The elements if this is an integer tensor.
    public var ints: [Int32]? {
        if case let .int32(v) = storage { return v }
        return nil
    }
}
