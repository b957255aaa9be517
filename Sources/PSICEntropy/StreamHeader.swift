/// The header of a PSIC stream (docs/bitstream.md): 44 fixed bytes in format version 1, about 26
/// in version 2, whose sizes and seed are varints and whose latent sizes are implied.
public struct StreamHeader: Sendable, Equatable {
    /// Size of a version-1 header, checksum included.
    public static let version1ByteCount = 44
    /// Largest image side: sizes beyond it are refused before anything is allocated.
    public static let maxSide = 1 << 16
    /// Largest pixel count (2^28: a 16384² image).
    public static let maxPixels = 1 << 28
    /// Largest number of levels (the sampler's counter has 8 bits for the level).
    public static let maxLevels = 64
    /// Bytes of the model fingerprint.
    public static let fingerprintBytes = 8

    /// The model the stream was encoded with: its 16-hex-digit fingerprint as 8 bytes.
    public var modelFingerprint: [UInt8]
    /// Image size in pixels (the decoder crops to it).
    public var width: Int
    public var height: Int
    /// Latent grid size: `4·⌈side/64⌉` (images are padded to multiples of 64; g_a divides by 16).
    public var latentWidth: Int
    public var latentHeight: Int
    /// Levels the stream carries (0...levelsTotal) and levels the model has.
    public var levelsPresent: Int
    public var levelsTotal: Int
    /// The sampling seed decoders use by default for untransmitted levels.
    public var seed: UInt64
    /// Flag bits; versions 1 and 2 define none, so this must be 0.
    public var flags: UInt16
    /// The format version the header (and the sections after it) is written in.
    public var formatVersion: UInt16

    /// A header in `formatVersion` (the version this code writes unless told).
    public init(modelFingerprint: [UInt8], width: Int, height: Int, latentWidth: Int, latentHeight: Int,
                levelsPresent: Int, levelsTotal: Int, seed: UInt64, flags: UInt16 = 0,
                formatVersion: UInt16 = PSICStream.formatVersion) {
        self.modelFingerprint = modelFingerprint
        self.width = width
        self.height = height
        self.latentWidth = latentWidth
        self.latentHeight = latentHeight
        self.levelsPresent = levelsPresent
        self.levelsTotal = levelsTotal
        self.seed = seed
        self.flags = flags
        self.formatVersion = formatVersion
    }

    /// The header's size in bytes, checksum included.
    public var byteCount: Int {
        guard formatVersion == 2 else { return Self.version1ByteCount }
        return 4 + 2 + 1 + Self.fingerprintBytes + 2 + 4 + ByteWriter.varintSize(UInt64(max(0, width)))
            + ByteWriter.varintSize(UInt64(max(0, height))) + ByteWriter.varintSize(seed)
    }

    /// z grid size: the hyper analysis divides the latent grid by 4.
    public var zWidth: Int { latentWidth / 4 }
    public var zHeight: Int { latentHeight / 4 }

    /// The latent side for an image side under the format's padding rule.
    public static func latentSide(forImageSide side: Int) -> Int { (side + 63) / 64 * 4 }

    /// The first defect of the fields, if any (shared by the writer and the parser).
    func defect() -> StreamError? {
        if modelFingerprint.count != Self.fingerprintBytes {
            return .corrupt(reason: "model fingerprint has \(modelFingerprint.count) bytes, expected 8")
        }
        if !PSICStream.readableFormatVersions.contains(formatVersion) {
            return .unsupportedVersion(found: formatVersion, supported: PSICStream.formatVersion)
        }
        if flags != 0 { return .unsupportedFlags(flags) }
        for (name, side) in [("width", width), ("height", height)] {
            if side < 1 { return .corrupt(reason: "image \(name) is \(side)") }
            if side > Self.maxSide { return .tooLarge(what: "image \(name)", value: side, limit: Self.maxSide) }
        }
        if width * height > Self.maxPixels {
            return .tooLarge(what: "pixel count", value: width * height, limit: Self.maxPixels)
        }
        if latentWidth != Self.latentSide(forImageSide: width) || latentHeight != Self.latentSide(forImageSide: height) {
            return .corrupt(reason: "latent grid \(latentWidth)×\(latentHeight) does not match image \(width)×\(height)")
        }
        if !(1...Self.maxLevels).contains(levelsTotal) {
            return .corrupt(reason: "level count \(levelsTotal) is outside 1...\(Self.maxLevels)")
        }
        if !(0...levelsTotal).contains(levelsPresent) {
            return .corrupt(reason: "\(levelsPresent) levels present of \(levelsTotal)")
        }
        return nil
    }

    /// The header's bytes in its format version, checksum included.
    func serialized() -> [UInt8] {
        var w = ByteWriter()
        w.append(contentsOf: PSICStream.magic)
        w.append(formatVersion)
        if formatVersion == 1 {
            w.append(flags)
            w.append(contentsOf: modelFingerprint)
            w.append(UInt32(width))
            w.append(UInt32(height))
            w.append(UInt16(latentWidth))
            w.append(UInt16(latentHeight))
            w.append(UInt8(levelsPresent))
            w.append(UInt8(levelsTotal))
            w.append(UInt16(0))                  // reserved
            w.append(seed)
        } else {
            w.append(UInt8(truncatingIfNeeded: flags))
            w.append(contentsOf: modelFingerprint)
            w.appendVarint(UInt64(width))
            w.appendVarint(UInt64(height))
            w.append(UInt8(levelsPresent))
            w.append(UInt8(levelsTotal))
            w.appendVarint(seed)
        }
        w.append(CRC32.checksum(w.bytes))
        return w.bytes
    }

    /// Parses and validates the header at the start of `bytes`. Magic and version are checked
    /// first, so a newer format is reported as such whatever its layout; then the checksum, then
    /// the fields.
    static func parse(_ reader: inout ByteReader) throws(StreamError) -> StreamHeader {
        let bytes = reader.bytes
        guard bytes.count >= 4 else {
            throw bytes.elementsEqual(PSICStream.magic.prefix(bytes.count)) ? .truncated(.header) : .badMagic
        }
        guard bytes[0..<4].elementsEqual(PSICStream.magic) else { throw .badMagic }
        try reader.skip(4, in: .header)
        let version = try reader.read(UInt16.self, in: .header)
        guard PSICStream.readableFormatVersions.contains(version) else {
            throw .unsupportedVersion(found: version, supported: PSICStream.formatVersion)
        }
        let header = version == 1 ? try parseVersion1(&reader) : try parseVersion2(&reader)
        if let defect = header.defect() { throw defect }
        return header
    }

    private static func parseVersion1(_ reader: inout ByteReader) throws(StreamError) -> StreamHeader {
        let bytes = reader.bytes
        guard bytes.count >= Self.version1ByteCount else { throw .truncated(.header) }
        let stored = UInt32(bytes[40]) | UInt32(bytes[41]) << 8 | UInt32(bytes[42]) << 16 | UInt32(bytes[43]) << 24
        guard CRC32.checksum(bytes[0..<40]) == stored else { throw .checksumMismatch(.header, substream: nil) }
        let flags = try reader.read(UInt16.self, in: .header)
        let fingerprint = Array(bytes[reader.position..<(reader.position + Self.fingerprintBytes)])
        try reader.skip(Self.fingerprintBytes, in: .header)
        let width = Int(try reader.read(UInt32.self, in: .header))
        let height = Int(try reader.read(UInt32.self, in: .header))
        let latentWidth = Int(try reader.read(UInt16.self, in: .header))
        let latentHeight = Int(try reader.read(UInt16.self, in: .header))
        let present = Int(try reader.read(UInt8.self, in: .header))
        let total = Int(try reader.read(UInt8.self, in: .header))
        let reserved = try reader.read(UInt16.self, in: .header)
        let seed = try reader.read(UInt64.self, in: .header)
        try reader.skip(4, in: .header)      // checksum, verified above
        guard reserved == 0 else { throw .corrupt(reason: "reserved header field is \(reserved), expected 0") }
        return StreamHeader(modelFingerprint: fingerprint, width: width, height: height,
                            latentWidth: latentWidth, latentHeight: latentHeight,
                            levelsPresent: present, levelsTotal: total, seed: seed, flags: flags, formatVersion: 1)
    }

    /// Version 2: the fields are read to find the header's end, the checksum over everything
    /// before it is checked, and only then are the values judged (by `defect()`).
    private static func parseVersion2(_ reader: inout ByteReader) throws(StreamError) -> StreamHeader {
        let flags = UInt16(try reader.read(UInt8.self, in: .header))
        let start = reader.position
        try reader.skip(Self.fingerprintBytes, in: .header)
        let fingerprint = Array(reader.bytes[start..<reader.position])
        // Sides beyond Int32 are kept as the largest Int32, so defect() names them too large.
        let width = Int(clamping: min(try reader.readVarint(in: .header, field: "image width"), UInt64(Int32.max)))
        let height = Int(clamping: min(try reader.readVarint(in: .header, field: "image height"), UInt64(Int32.max)))
        let present = Int(try reader.read(UInt8.self, in: .header))
        let total = Int(try reader.read(UInt8.self, in: .header))
        let seed = try reader.readVarint(in: .header, field: "seed")
        let end = reader.position
        guard try reader.read(UInt32.self, in: .header) == CRC32.checksum(reader.bytes[0..<end]) else {
            throw .checksumMismatch(.header, substream: nil)
        }
        return StreamHeader(modelFingerprint: fingerprint, width: width, height: height,
                            latentWidth: latentSide(forImageSide: width), latentHeight: latentSide(forImageSide: height),
                            levelsPresent: present, levelsTotal: total, seed: seed, flags: flags, formatVersion: 2)
    }
}
