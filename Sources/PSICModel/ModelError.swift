/// Errors loading a PSIC model file.
public enum ModelError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file is not a well-formed safetensors file.
    case malformedFile(reason: String)
    /// The file is safetensors but not a PSIC model, or of a format version this build does not read.
    case unsupportedModel(reason: String)
    /// A tensor the model needs is missing or has the wrong dtype/shape.
    case badTensor(name: String, reason: String)

    public var description: String {
        switch self {
        case let .malformedFile(reason): return "not a valid model file: \(reason)"
        case let .unsupportedModel(reason): return "unsupported model: \(reason)"
        case let .badTensor(name, reason): return "model tensor '\(name)': \(reason)"
        }
    }
}
