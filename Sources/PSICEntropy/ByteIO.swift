/// Little-endian field writer for the stream container.
struct ByteWriter {
    private(set) var bytes: [UInt8] = []

    mutating func append<T: FixedWidthInteger>(_ value: T) {
        var v = value.littleEndian
        withUnsafeBytes(of: &v) { bytes.append(contentsOf: $0) }
    }

    mutating func append(contentsOf data: some Sequence<UInt8>) { bytes.append(contentsOf: data) }

    /// Appends `value` as an unsigned LEB128 varint: 7 bits a byte, low group first, the high bit
    /// set on every byte but the last (format version 2's sizes, lengths and seed).
    mutating func appendVarint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    /// Bytes `appendVarint(value)` writes.
    static func varintSize(_ value: UInt64) -> Int {
        max(1, (64 - value.leadingZeroBitCount + 6) / 7)
    }
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

    /// Reads an unsigned LEB128 varint of at most 10 bytes. Only the shortest encoding of a value
    /// is accepted (no trailing zero groups), so every value has one byte form and a stream one
    /// layout; a 10th byte above 1 would overflow 64 bits and is refused too.
    mutating func readVarint(in location: StreamLocation, field: String) throws(StreamError) -> UInt64 {
        var value: UInt64 = 0
        for i in 0..<10 {
            let byte = try read(UInt8.self, in: location)
            if i == 9, byte > 1 { throw .corrupt(reason: "\(field) in \(location) overflows 64 bits") }
            value |= UInt64(byte & 0x7F) << (7 * UInt64(i))
            if byte & 0x80 == 0 {
                if byte == 0, i > 0 { throw .corrupt(reason: "\(field) in \(location) is not minimally encoded") }
                return value
            }
        }
        throw .corrupt(reason: "\(field) in \(location) is longer than 10 bytes")
    }

    mutating func skip(_ count: Int, in location: StreamLocation) throws(StreamError) {
        guard count >= 0, remaining >= count else { throw .truncated(location) }
        position += count
    }
}
