/// One parsed section of a stream (the z section or a level): its independent substreams, each
/// already checked against its length and CRC-32. Refers into the stream's bytes without copying.
public struct StreamSection: Sendable {
    /// Most substreams a section may have (encoders use at most `LevelCoder.maxSubstreams`).
    public static let maxSubstreams = 64
    /// Bytes per substream entry in the section's table: length and CRC-32, UInt32 each.
    static let entryBytes = 8

    /// Bytes of a section's substream table: the count, then one entry per substream.
    static func tableBytes(substreams: Int) -> Int { 2 + substreams * entryBytes }

    /// Which part of the stream this is, for error messages.
    public let location: StreamLocation
    /// The whole stream's bytes (shared storage) and where this section lies in it.
    let bytes: [UInt8]
    public let range: Range<Int>
    let substreamRanges: [Range<Int>]

    /// Bytes of the section, its substream table included.
    public var byteCount: Int { range.count }
    /// Number of independent substreams.
    public var substreamCount: Int { substreamRanges.count }
    /// Bytes of the section's substream table (count and entries): container, not coded symbols.
    public var tableByteCount: Int { Self.tableBytes(substreams: substreamCount) }
    /// The coded bytes of substream `i`.
    public func substream(_ i: Int) -> ArraySlice<UInt8> { bytes[substreamRanges[i]] }

    /// Parses the section at the reader's position. `rows` is the number of latent rows the
    /// section codes (substreams are bands of rows, so there can be no more substreams than rows).
    /// Lengths are checked against the bytes left before anything depends on them.
    static func parse(_ reader: inout ByteReader, location: StreamLocation, rows: Int) throws(StreamError) -> StreamSection {
        let begin = reader.position
        let count = Int(try reader.read(UInt16.self, in: location))
        let limit = min(Self.maxSubstreams, rows)
        guard count >= 1 else { throw .corrupt(reason: "the \(location) has no substreams") }
        guard count <= limit else { throw .tooLarge(what: "substream count of \(location)", value: count, limit: limit) }
        guard reader.remaining >= count * Self.entryBytes else { throw .truncated(location) }
        var lengths: [Int] = [], checksums: [UInt32] = []
        var total = 0
        for i in 0..<count {
            let length = Int(try reader.read(UInt32.self, in: location))
            guard length >= RANS.stateBytes else {
                throw .corrupt(reason: "substream \(i) of the \(location) has \(length) bytes, fewer than a coder state")
            }
            lengths.append(length)
            checksums.append(try reader.read(UInt32.self, in: location))
            total += length                   // ≤ 64 · (2^32 − 1): no overflow in Int
        }
        guard total <= reader.remaining else { throw .truncated(location) }
        var ranges: [Range<Int>] = []
        for i in 0..<count {
            let range = reader.position..<(reader.position + lengths[i])
            guard CRC32.checksum(reader.bytes[range]) == checksums[i] else {
                throw .checksumMismatch(location, substream: i)
            }
            ranges.append(range)
            try reader.skip(lengths[i], in: location)
        }
        return StreamSection(location: location, bytes: reader.bytes, range: begin..<reader.position, substreamRanges: ranges)
    }

    /// Serialises substreams into a section: count, (length, CRC-32) per substream, then the data.
    static func serialize(substreams: [[UInt8]]) -> [UInt8] {
        var w = ByteWriter()
        w.append(UInt16(substreams.count))
        for s in substreams {
            w.append(UInt32(s.count))
            w.append(CRC32.checksum(s))
        }
        for s in substreams { w.append(contentsOf: s) }
        return w.bytes
    }
}
