/// One parsed section of a stream (the z section or a level): its independent substreams, each
/// already checked against its length and checksum. Refers into the stream's bytes without copying.
///
/// Layout (docs/bitstream.md): version 1 has a u16 count, then a u32 length and a CRC-32 per
/// substream, then the substreams; version 2 has a u8 count and a varint length per substream,
/// then the substreams, then one CRC-32 of everything before it in the section.
public struct StreamSection: Sendable {
    /// Most substreams a section may have (encoders use at most `LevelCoder.maxSubstreams`).
    public static let maxSubstreams = 64

    /// Bytes of a section's container (count, lengths and checksums: all but the substreams'
    /// own bytes) for substreams of these lengths.
    static func tableBytes(lengths: [Int], format: UInt16) -> Int {
        format == 1 ? 2 + 8 * lengths.count
            : 1 + lengths.reduce(0) { $0 + ByteWriter.varintSize(UInt64($1)) } + 4
    }

    /// Which part of the stream this is, for error messages.
    public let location: StreamLocation
    /// The whole stream's bytes (shared storage) and where this section lies in it.
    let bytes: [UInt8]
    public let range: Range<Int>
    let substreamRanges: [Range<Int>]

    /// Bytes of the section, its container included.
    public var byteCount: Int { range.count }
    /// Number of independent substreams.
    public var substreamCount: Int { substreamRanges.count }
    /// Bytes of the section's container (count, lengths, checksums): not coded symbols.
    public var tableByteCount: Int { range.count - substreamRanges.reduce(0) { $0 + $1.count } }
    /// The coded bytes of substream `i`.
    public func substream(_ i: Int) -> ArraySlice<UInt8> { bytes[substreamRanges[i]] }

    /// Parses the section at the reader's position, laid out as format `format` lays it out.
    /// `rows` is the number of latent rows the section codes (substreams are bands of rows, so
    /// there can be no more substreams than rows). Lengths are checked against the bytes left
    /// before anything depends on them.
    static func parse(_ reader: inout ByteReader, location: StreamLocation, rows: Int,
                      format: UInt16) throws(StreamError) -> StreamSection {
        let begin = reader.position
        let count = format == 1 ? Int(try reader.read(UInt16.self, in: location)) : Int(try reader.read(UInt8.self, in: location))
        let limit = min(Self.maxSubstreams, rows)
        guard count >= 1 else { throw .corrupt(reason: "the \(location) has no substreams") }
        guard count <= limit else { throw .tooLarge(what: "substream count of \(location)", value: count, limit: limit) }
        if format == 1 { guard reader.remaining >= count * 8 else { throw .truncated(location) } }
        var lengths: [Int] = [], checksums: [UInt32] = []
        var total = 0
        for i in 0..<count {
            let length: Int
            if format == 1 {
                length = Int(try reader.read(UInt32.self, in: location))
                checksums.append(try reader.read(UInt32.self, in: location))
            } else {
                let v = try reader.readVarint(in: location, field: "length of substream \(i)")
                // Anything longer than the bytes left is a truncation; the cap keeps the sum in Int.
                length = Int(min(v, UInt64(UInt32.max)))
            }
            guard length >= RANS.stateBytes else {
                throw .corrupt(reason: "substream \(i) of the \(location) has \(length) bytes, fewer than a coder state")
            }
            lengths.append(length)
            total += length                   // ≤ 64 · (2^32 − 1): no overflow in Int
        }
        guard total + (format == 1 ? 0 : 4) <= reader.remaining else { throw .truncated(location) }
        var ranges: [Range<Int>] = []
        for i in 0..<count {
            let range = reader.position..<(reader.position + lengths[i])
            if format == 1, CRC32.checksum(reader.bytes[range]) != checksums[i] {
                throw .checksumMismatch(location, substream: i)
            }
            ranges.append(range)
            try reader.skip(lengths[i], in: location)
        }
        if format != 1 {
            let covered = begin..<reader.position
            guard try reader.read(UInt32.self, in: location) == CRC32.checksum(reader.bytes[covered]) else {
                throw .checksumMismatch(location, substream: nil)
            }
        }
        return StreamSection(location: location, bytes: reader.bytes, range: begin..<reader.position, substreamRanges: ranges)
    }

    /// Serialises substreams into a section laid out as format `format` lays it out.
    static func serialize(substreams: [[UInt8]], format: UInt16) -> [UInt8] {
        var w = ByteWriter()
        if format == 1 {
            w.append(UInt16(substreams.count))
            for s in substreams {
                w.append(UInt32(s.count))
                w.append(CRC32.checksum(s))
            }
            for s in substreams { w.append(contentsOf: s) }
        } else {
            w.append(UInt8(substreams.count))
            for s in substreams { w.appendVarint(UInt64(s.count)) }
            for s in substreams { w.append(contentsOf: s) }
            w.append(CRC32.checksum(w.bytes))
        }
        return w.bytes
    }
}
