/// Inputs the entropy coder refuses from its caller (the codec), as opposed to `StreamError`,
/// which describes bad stream bytes. These indicate a codec bug or an unsupported image.
public enum EntropyCodingError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A symbol's magnitude reaches `EscapeCode.magnitudeLimit`; the stream cannot carry it.
    case valueOutOfRange(value: Int32, limit: Int)
    /// A per-element table index does not name a table of the set.
    case tableIndexOutOfRange(index: Int32, tableCount: Int)
    /// An array does not have the element count its shape implies.
    case shapeMismatch(what: String, expected: Int, found: Int)
    /// A latent shape is empty or beyond the stream's limits.
    case invalidShape(LatentShape)
    /// A header or section handed to the writer is not valid (the reason says which field).
    case invalidStreamContent(reason: String)

    public var description: String {
        switch self {
        case let .valueOutOfRange(value, limit):
            return "symbol \(value) cannot be coded: escapes carry magnitudes below \(limit) (clamp latents before quantising)"
        case let .tableIndexOutOfRange(index, count):
            return "table index \(index) is outside the table set's 0..<\(count) (clamp scale indexes to the table count)"
        case let .shapeMismatch(what, expected, found):
            return "\(what) has \(found) elements, the shape needs \(expected)"
        case let .invalidShape(shape):
            return "latent shape \(shape.channels)×\(shape.height)×\(shape.width) is empty or too large to code"
        case let .invalidStreamContent(reason):
            return "cannot write stream: \(reason)"
        }
    }
}
