/// A parsed PSIC stream: header, z section and the levels present (docs/bitstream.md).
///
/// Parsing validates everything that does not need the model's networks: magic, version,
/// header checksum and fields, the model fingerprint when given, every section's lengths against
/// the bytes left, every substream's CRC-32, and that nothing trails the last level.
public struct PSICStream: Sendable {
    /// The stream's first four bytes.
    public static let magic: [UInt8] = Array("PSIC".utf8)
    /// The format version this code writes (unless a header asks for another).
    public static let formatVersion: UInt16 = 2
    /// The format versions this code reads (and writes when a header asks for one).
    public static let readableFormatVersions: ClosedRange<UInt16> = 1...2

    public let header: StreamHeader
    public let zSection: StreamSection
    /// Sections of levels `0 ..< header.levelsPresent`.
    public let levelSections: [StreamSection]
    /// The stream's bytes.
    public let bytes: [UInt8]

    /// Parses `bytes`. With `expectedFingerprint` (the decoding model's 8 bytes), a stream of
    /// another model is refused. With `acceptingIncompleteLevels`, a stream cut inside a level
    /// (a partial download) yields the complete levels before the cut, and `header.levelsPresent`
    /// says how many; without it, such a stream is `.truncated`.
    public init(bytes: [UInt8], expectedFingerprint: [UInt8]? = nil,
                acceptingIncompleteLevels: Bool = false) throws(StreamError) {
        var reader = ByteReader(bytes)
        var header = try StreamHeader.parse(&reader)
        if let expectedFingerprint, expectedFingerprint != header.modelFingerprint {
            throw .modelMismatch(stream: header.modelFingerprint, model: expectedFingerprint)
        }
        let format = header.formatVersion
        let z = try StreamSection.parse(&reader, location: .z, rows: header.zHeight, format: format)
        var levels: [StreamSection] = []
        var cut = false
        for i in 0..<header.levelsPresent {
            do {
                levels.append(try StreamSection.parse(&reader, location: .level(i), rows: header.latentHeight, format: format))
            } catch .truncated(.level(i)) where acceptingIncompleteLevels {
                header.levelsPresent = i
                cut = true
                break
            }
        }
        if !cut, reader.remaining > 0 {
            throw .corrupt(reason: "\(reader.remaining) bytes follow the last level")
        }
        self.header = header
        zSection = z
        levelSections = levels
        self.bytes = bytes
    }

    /// The header alone (validated, checksum included), without parsing the sections.
    public static func peekHeader(_ bytes: [UInt8]) throws(StreamError) -> StreamHeader {
        var reader = ByteReader(bytes)
        return try StreamHeader.parse(&reader)
    }

    /// A valid stream of the same image holding only the first `levels` levels: the header
    /// (levels present, checksum) is rewritten and the later sections dropped, in format version
    /// `format` (the stream's own when nil: a byte cut; another readable version re-lays the
    /// same substreams out in its container). No decoding.
    public func truncated(toLevels levels: Int, format: UInt16? = nil) throws(StreamError) -> [UInt8] {
        guard (0...header.levelsPresent).contains(levels) else {
            throw .levelsNotPresent(requested: levels, present: header.levelsPresent)
        }
        var h = header
        h.levelsPresent = levels
        let format = format ?? header.formatVersion
        guard PSICStream.readableFormatVersions.contains(format) else {
            throw .unsupportedVersion(found: format, supported: PSICStream.formatVersion)
        }
        if format == header.formatVersion {
            let end = levels == 0 ? zSection.range.upperBound : levelSections[levels - 1].range.upperBound
            return h.serialized() + bytes[header.byteCount..<end]
        }
        h.formatVersion = format
        var out = h.serialized()
        for section in [zSection] + levelSections.prefix(levels) {
            out += StreamSection.serialize(substreams: (0..<section.substreamCount).map { Array(section.substream($0)) },
                                           format: format)
        }
        return out
    }

    /// Assembles a stream from its header and sections (as `LevelCoder` returns them), laid out
    /// in `header.formatVersion`. `header.levelsPresent` must equal the number of level sections;
    /// every section is parsed back, so the writer never emits a stream its own parser would refuse.
    public static func write(header: StreamHeader, zSection: CodedSection,
                             levelSections: [CodedSection]) throws(EntropyCodingError) -> [UInt8] {
        if let defect = header.defect() { throw .invalidStreamContent(reason: defect.description) }
        guard header.levelsPresent == levelSections.count else {
            throw .invalidStreamContent(reason: "header says \(header.levelsPresent) levels, \(levelSections.count) sections given")
        }
        let format = header.formatVersion
        var out = header.serialized()
        out.reserveCapacity(out.count + zSection.byteCount(format: format)
                            + levelSections.reduce(0) { $0 + $1.byteCount(format: format) })
        out += zSection.serialized(format: format)
        for s in levelSections { out += s.serialized(format: format) }
        do {
            _ = try PSICStream(bytes: out)
        } catch {
            throw .invalidStreamContent(reason: error.description)
        }
        return out
    }
}
