/// Little-endian field writer for the stream container.
struct ByteWriter {
    private(set) var bytes: [UInt8] = []

    mutating func append<T: FixedWidthInteger>(_ value: T) {
        var v = value.littleEndian
        withUnsafeBytes(of: &v) { bytes.append(contentsOf: $0) }
    }

    mutating func append(contentsOf data: some Sequence<UInt8>) { bytes.append(contentsOf: data) }
}

/// Little-endian field reader over a byte array; every read is checked against the end and
/// reports `StreamError.truncated(location)`, so parsing never reads past the input.
struct ByteReader {
    let bytes: [UInt8]
    private(set) var position: Int

    init(_ bytes: [UInt8], position: Int = 0) {
        self.bytes = bytes
        self.position = position
    }

    var remaining: Int { bytes.count - position }

    mutating func read<T: FixedWidthInteger>(_: T.Type, in location: StreamLocation) throws(StreamError) -> T {
        let size = MemoryLayout<T>.size
        guard remaining >= size else { throw .truncated(location) }
        var v: T = 0
        for i in 0..<size { v |= T(truncatingIfNeeded: bytes[position + i]) << (8 * i) }
        position += size
        return v
    }

    mutating func skip(_ count: Int, in location: StreamLocation) throws(StreamError) {
        guard count >= 0, remaining >= count else { throw .truncated(location) }
        position += count
    }
}
