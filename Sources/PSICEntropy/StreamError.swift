/// Where in a stream a problem lies: the header, the z section or a level (0-based); described
/// with its article ("the header", "level 3") to read inside a sentence.
public enum StreamLocation: Equatable, Sendable, CustomStringConvertible {
    case header
    case z
    case level(Int)

    public var description: String {
        switch self {
        case .header: return "the header"
        case .z: return "the z section"
        case let .level(i): return "level \(i + 1)"
        }
    }
}

/// Why a PSIC stream was refused. Parsing and decoding report every defect of the bytes
/// (damage, truncation, another model, a newer format) with one of these; none of them crashes,
/// hangs or allocates more than the stream's own size justifies.
public enum StreamError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The bytes do not start with "PSIC": not a PSIC stream.
    case badMagic
    /// The stream was written in a format version this decoder does not read (`supported`: the
    /// newest it reads; it reads every version from 1 up to that).
    case unsupportedVersion(found: UInt16, supported: UInt16)
    /// The header sets flags this format version does not define.
    case unsupportedFlags(UInt16)
    /// The stream was encoded with another model than the one given to decode it.
    case modelMismatch(stream: [UInt8], model: [UInt8])
    /// The stream ends inside this part (cut during transfer or copy).
    case truncated(StreamLocation)
    /// A checksum does not match: the bytes were damaged (substream nil: the header's checksum, or
    /// a whole section's in format version 2).
    case checksumMismatch(StreamLocation, substream: Int?)
    /// A field holds an impossible value, or entropy-coded data does not decode consistently.
    case corrupt(reason: String)
    /// A size field exceeds what the format allows.
    case tooLarge(what: String, value: Int, limit: Int)
    /// More levels were asked for than the stream carries.
    case levelsNotPresent(requested: Int, present: Int)

    public var description: String {
        switch self {
        case .badMagic:
            return "not a PSIC stream (the first bytes are not \"PSIC\")"
        case let .unsupportedVersion(found, supported):
            return found > supported
                ? "stream format version \(found) is newer than this decoder's \(supported); update psic to decode it"
                : "stream format version \(found) is not supported (this decoder reads versions 1 to \(supported))"
        case let .unsupportedFlags(flags):
            return "stream header sets unknown flags 0x\(String(flags, radix: 16)); it was written by a newer psic, update to decode it"
        case let .modelMismatch(stream, model):
            return "stream was encoded with model \(hex(stream)), but the model given is \(hex(model)); decode with the model the stream was made with"
        case let .truncated(location):
            return "stream is truncated in \(location); it was cut short (use `psic truncate` to cut streams at level boundaries)"
        case let .checksumMismatch(location, substream):
            let part = substream.map { "substream \($0) of \(location)" } ?? "\(location)"
            return "checksum mismatch in \(part): the stream is damaged"
        case let .corrupt(reason):
            return "stream is corrupt: \(reason)"
        case let .tooLarge(what, value, limit):
            return "stream \(what) is \(value), above the limit \(limit); the stream is corrupt or from an incompatible encoder"
        case let .levelsNotPresent(requested, present):
            return "\(requested) levels requested, but the stream carries \(present); ask for 0...\(present)"
        }
    }
}

func hex(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef")
    return String(bytes.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 15)]] })
}
