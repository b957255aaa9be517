import PSICEntropy

/// The fuzzed code path: parse a stream and decode every section with a fixed synthetic model
/// (2 z channels, 2 channels per level, 8 Gaussian tables). Any outcome but a crash, hang or
/// sanitizer report is acceptable.
enum StreamFuzzing {
    static let tables = CDFTableSet.syntheticGaussian(scales: [0.11, 0.3, 0.8, 1.5, 3, 8, 30, 200])
    static let zChannels = 2
    static let levelChannels = 2
    /// Decoding garbage for the largest grids the format allows takes ~0.1 s; the fuzzer skips
    /// those to keep its iteration rate (the parser still runs on them).
    static let decodeLimit = 1 << 16

    static func run(_ input: [UInt8]) {
        exercise(input)
        // Checksums stop random mutations before the entropy decoder; run again with them
        // repaired so the fuzzer reaches the decoder too.
        let repaired = withRepairedChecksums(input)
        if repaired != input { exercise(repaired) }
    }

    static func exercise(_ bytes: [UInt8]) {
        guard let stream = try? PSICStream(bytes: bytes) else {
            _ = try? PSICStream(bytes: bytes, acceptingIncompleteLevels: true)
            return
        }
        let h = stream.header
        for levels in 0...h.levelsPresent {
            _ = try? stream.truncated(toLevels: levels)
        }
        let zShape = LatentShape(channels: zChannels, height: h.zHeight, width: h.zWidth)
        guard zShape.count <= decodeLimit else { return }
        _ = try? LevelCoder.decodeByChannel(stream.zSection, shape: zShape, tables: tables)
        let shape = LatentShape(channels: levelChannels, height: h.latentHeight, width: h.latentWidth)
        guard shape.count <= decodeLimit else { return }
        for (i, section) in stream.levelSections.enumerated() {
            let indexes = (0..<shape.count).map { Int32(($0 &* 7 &+ i) % tables.count) }
            _ = try? LevelCoder.decode(section, tableIndexes: indexes, shape: shape, tables: tables)
        }
    }

    /// `bytes` with the header CRC and every in-bounds section or substream CRC recomputed,
    /// following the documented layouts (docs/bitstream.md) independently of the parser.
    static func withRepairedChecksums(_ input: [UInt8]) -> [UInt8] {
        guard input.count >= 6 else { return input }
        switch Int(input[4]) | Int(input[5]) << 8 {
        case 1: return repairedVersion1(input)
        case 2: return repairedVersion2(input)
        default: return input
        }
    }

    static func repairedVersion1(_ input: [UInt8]) -> [UInt8] {
        var b = input
        guard b.count >= 44 else { return b }
        put(CRC32.checksum(b[0..<40]), at: 40, in: &b)
        let sections = 1 + Int(b[28])        // z + levels present
        var p = 44
        for _ in 0..<sections {
            guard p + 2 <= b.count else { break }
            let k = Int(b[p]) | Int(b[p + 1]) << 8
            let table = p + 2
            var data = table + 8 * k
            guard data <= b.count else { break }
            for i in 0..<k {
                let e = table + 8 * i
                let length = Int(b[e]) | Int(b[e + 1]) << 8 | Int(b[e + 2]) << 16 | Int(b[e + 3]) << 24
                guard length <= b.count - data else { return b }
                put(CRC32.checksum(b[data..<(data + length)]), at: e + 4, in: &b)
                data += length
            }
            p = data
        }
        return b
    }

    static func repairedVersion2(_ input: [UInt8]) -> [UInt8] {
        var b = input
        // A varint at p: its value and the position after it, or nil past the end or 10 bytes.
        func varint(_ p: Int) -> (UInt64, Int)? {
            var v: UInt64 = 0
            for i in 0..<10 where p + i < b.count {
                v |= UInt64(b[p + i] & 0x7F) << (7 * UInt64(i))
                if b[p + i] & 0x80 == 0 { return (v, p + i + 1) }
            }
            return nil
        }
        // magic, version, flags, fingerprint; width, height; levels present and total; seed
        guard let (_, afterWidth) = varint(15), let (_, afterHeight) = varint(afterWidth),
              afterHeight + 2 <= b.count, let (_, end) = varint(afterHeight + 2), end + 4 <= b.count else { return b }
        put(CRC32.checksum(b[0..<end]), at: end, in: &b)
        let sections = 1 + Int(b[afterHeight])
        var p = end + 4
        for _ in 0..<sections {
            guard p < b.count else { break }
            var q = p + 1, total = 0
            for _ in 0..<Int(b[p]) {
                guard let (length, next) = varint(q), length <= UInt64(b.count) else { return b }
                total += Int(length)
                q = next
            }
            guard total <= b.count - q - 4 else { return b }
            put(CRC32.checksum(b[p..<(q + total)]), at: q + total, in: &b)
            p = q + total + 4
        }
        return b
    }

    static func put(_ v: UInt32, at i: Int, in b: inout [UInt8]) {
        for j in 0..<4 { b[i + j] = UInt8(truncatingIfNeeded: v >> (8 * j)) }
    }

    /// A few valid streams to start the fuzzer from.
    static func seeds() throws -> [[UInt8]] {
        var out: [[UInt8]] = []
        for (w, h, levels, salt) in [(64, 64, 2, 1), (100, 60, 3, 2), (130, 70, 1, 3)] {
            let latent = LatentShape(channels: levelChannels, height: StreamHeader.latentSide(forImageSide: h),
                                     width: StreamHeader.latentSide(forImageSide: w))
            let z = LatentShape(channels: zChannels, height: latent.height / 4, width: latent.width / 4)
            func noise(_ n: Int, _ s: Int) -> [Int32] {
                (0..<n).map { Int32(truncatingIfNeeded: SynonymSampler.splitmix64(UInt64($0 + 1000 * s)) % 9) - 4 }
            }
            let zSection = try LevelCoder.encodeByChannel(symbols: noise(z.count, salt), shape: z, tables: tables)
            var sections: [CodedSection] = []
            for i in 0..<levels {
                let indexes = (0..<latent.count).map { Int32(($0 &* 7 &+ i) % tables.count) }
                var symbols = noise(latent.count, salt * 10 + i)
                symbols[0] = 5000                 // one escape per level
                sections.append(try LevelCoder.encode(symbols: symbols, tableIndexes: indexes, shape: latent,
                                                      tables: tables, substreams: min(latent.height, 1 + i)))
            }
            // Both layouts the decoder reads.
            for format in PSICStream.readableFormatVersions {
                let header = StreamHeader(modelFingerprint: [1, 2, 3, 4, 5, 6, 7, 8], width: w, height: h,
                                          latentWidth: latent.width, latentHeight: latent.height,
                                          levelsPresent: levels, levelsTotal: 4, seed: UInt64(salt), formatVersion: format)
                out.append(try PSICStream.write(header: header, zSection: zSection, levelSections: sections))
            }
        }
        return out
    }
}

/// libFuzzer's entry point.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data, size > 0 else { return 0 }
    StreamFuzzing.run(Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}
