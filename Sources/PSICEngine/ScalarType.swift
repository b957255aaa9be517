/// Element type of a tensor. Float tensors carry the analysis/synthesis transforms; Int32
/// tensors carry the integer entropy model, whose results must be identical on every backend.
public enum ScalarType: Sendable, Hashable {
    case float32
    case int32

    /// Size of one element in bytes (both are 4 bytes today; kept explicit for buffers).
    public var byteSize: Int { 4 }
}
