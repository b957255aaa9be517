@testable import PSICEntropy

/// Deterministic generator so failures reproduce.
struct SplitMixRNG: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return SynonymSampler.splitmix64(state &- 0x9E37_79B9_7F4A_7C15)
    }
}

enum Fixtures {
    static let gaussian = CDFTableSet.syntheticGaussian(scales: CDFTableSet.modelScales(count: 64))
    static let small = CDFTableSet.syntheticGaussian(scales: [0.11, 0.5, 1, 2, 4, 16])
    static let fingerprint: [UInt8] = [0x01, 0x02, 0xbc, 0xc5, 0x78, 0x07, 0x25, 0x88]

    /// Random tables with arbitrary frequencies, offsets and lengths (2…300 symbols).
    static func randomTables(_ count: Int, rng: inout SplitMixRNG) -> CDFTableSet {
        CDFTableSet(tables: (0..<count).map { _ in
            let length = Int.random(in: 2...300, using: &rng)
            var weights = (0..<length).map { _ in Double.random(in: 0...1, using: &rng) }
            if Bool.random(using: &rng) { weights[Int.random(in: 0..<length, using: &rng)] = 1000 }  // skewed
            let sum = weights.reduce(0, +)
            return CDFTableSet.table(probabilities: weights.map { $0 / sum },
                                     offset: Int32.random(in: -400...400, using: &rng))
        })
    }

    /// A stream of a `width`×`height` image with `levels` levels of `channels` channels, plus
    /// the symbols and table indexes it encodes (z uses channel tables of `small`).
    struct Encoded {
        var stream: [UInt8]
        var header: StreamHeader
        var zSymbols: [Int32]
        var zShape: LatentShape
        var levelSymbols: [[Int32]]
        var levelIndexes: [[Int32]]
        var levelShape: LatentShape
    }

    static func encodedStream(width: Int = 200, height: Int = 130, levels: Int = 3, total: Int = 4,
                              channels: Int = 3, seed: UInt64 = 1,
                              format: UInt16 = PSICStream.formatVersion) throws -> Encoded {
        var rng = SplitMixRNG(seed: seed)
        let lh = StreamHeader.latentSide(forImageSide: height), lw = StreamHeader.latentSide(forImageSide: width)
        let zShape = LatentShape(channels: 4, height: lh / 4, width: lw / 4)
        let levelShape = LatentShape(channels: channels, height: lh, width: lw)
        let zSymbols = (0..<zShape.count).map { _ in Int32.random(in: -3...3, using: &rng) }
        let zSection = try LevelCoder.encodeByChannel(symbols: zSymbols, shape: zShape, tables: small)
        var symbols: [[Int32]] = [], indexes: [[Int32]] = [], sections: [CodedSection] = []
        for i in 0..<levels {
            let idx = (0..<levelShape.count).map { _ in Int32.random(in: 0..<Int32(gaussian.count), using: &rng) }
            let s = try SynonymSampler.sampleLevel(tableIndexes: idx, shape: levelShape, tables: gaussian,
                                                   seed: seed, level: i)
            symbols.append(s)
            indexes.append(idx)
            sections.append(try LevelCoder.encode(symbols: s, tableIndexes: idx, shape: levelShape, tables: gaussian,
                                                  substreams: min(lh, i + 1)))
        }
        let header = StreamHeader(modelFingerprint: fingerprint, width: width, height: height, latentWidth: lw,
                                  latentHeight: lh, levelsPresent: levels, levelsTotal: total, seed: seed,
                                  formatVersion: format)
        let stream = try PSICStream.write(header: header, zSection: zSection, levelSections: sections)
        return Encoded(stream: stream, header: header, zSymbols: zSymbols, zShape: zShape, levelSymbols: symbols,
                       levelIndexes: indexes, levelShape: levelShape)
    }

    /// Parses and decodes everything; rethrows the first error.
    static func decodeAll(_ bytes: [UInt8], zShape: LatentShape, levelShape: LatentShape,
                          indexes: [[Int32]]) throws -> (z: [Int32], levels: [[Int32]]) {
        let s = try PSICStream(bytes: bytes, expectedFingerprint: fingerprint)
        let z = try LevelCoder.decodeByChannel(s.zSection, shape: zShape, tables: small)
        let levels = try s.levelSections.enumerated().map { i, section in
            try LevelCoder.decode(section, tableIndexes: indexes[i], shape: levelShape, tables: gaussian)
        }
        return (z, levels)
    }

    /// Overwrites a little-endian UInt32 of a version-1 header and fixes its checksum, to build
    /// streams whose header is well-formed but says something else.
    static func patchHeader(_ bytes: [UInt8], at offset: Int, _ value: UInt32, size: Int = 4) -> [UInt8] {
        var b = bytes
        for j in 0..<size { b[offset + j] = UInt8(truncatingIfNeeded: value >> (8 * j)) }
        let crc = CRC32.checksum(b[0..<40])
        for j in 0..<4 { b[40 + j] = UInt8(truncatingIfNeeded: crc >> (8 * j)) }
        return b
    }

    /// `stream` with its header replaced by `header` serialised as it is (no field checks), to
    /// build version-2 streams whose header is well-formed but says something else.
    static func replacingHeader(of stream: [UInt8], with header: StreamHeader) throws -> [UInt8] {
        let old = try PSICStream.peekHeader(stream)
        return header.serialized() + stream[old.byteCount...]
    }
}
