import Testing
@testable import PSICEntropy

@Suite struct PSICStreamTests {
    @Test func crc32CheckValue() {
        #expect(CRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)
        #expect(CRC32.checksum([UInt8]()) == 0)
    }

    @Test(arguments: PSICStream.readableFormatVersions)
    func roundTripsAndDescribesItself(format: UInt16) throws {
        let e = try Fixtures.encodedStream(format: format)
        let s = try PSICStream(bytes: e.stream, expectedFingerprint: Fixtures.fingerprint)
        #expect(s.header == e.header && s.header.formatVersion == format)
        #expect(try PSICStream.peekHeader(e.stream) == e.header)
        #expect(s.levelSections.map(\.substreamCount) == [1, 2, 3])
        #expect(s.header.byteCount == e.header.serialized().count)
        // Version 2: 4 magic, 2 version, 1 flags, 8 fingerprint, width 200 and height 130 in two
        // varint bytes each, 2 level counts, seed 1 in one byte, 4 checksum.
        #expect(s.header.byteCount == (format == 1 ? 44 : 4 + 2 + 1 + 8 + 2 + 2 + 2 + 1 + 4))
        #expect(s.header.byteCount + s.zSection.byteCount + s.levelSections.reduce(0) { $0 + $1.byteCount } == e.stream.count)
        // A section is its container and its substreams' bytes. Version 1: a u16 count and 8 bytes
        // an entry; version 2: a u8 count, a varint length an entry and one checksum.
        for section in [s.zSection] + s.levelSections {
            let lengths = (0..<section.substreamCount).map { section.substream($0).count }
            let container = format == 1 ? 2 + 8 * lengths.count
                : 1 + lengths.map { $0 < 128 ? 1 : $0 < 16384 ? 2 : 3 }.reduce(0, +) + 4
            #expect(section.tableByteCount == container)
            #expect(section.tableByteCount + lengths.reduce(0, +) == section.byteCount)
        }
        let d = try Fixtures.decodeAll(e.stream, zShape: e.zShape, levelShape: e.levelShape, indexes: e.levelIndexes)
        #expect(d.z == e.zSymbols)
        #expect(d.levels == e.levelSymbols)
    }

    @Test(arguments: PSICStream.readableFormatVersions)
    func truncationGivesValidStreamsWithIdenticalLevels(format: UInt16) throws {
        let e = try Fixtures.encodedStream(format: format)
        let s = try PSICStream(bytes: e.stream)
        var previous = Int.max
        for l in stride(from: 3, through: 0, by: -1) {
            let cut = try s.truncated(toLevels: l)
            #expect(cut.count < previous)
            previous = cut.count
            let t = try PSICStream(bytes: cut, expectedFingerprint: Fixtures.fingerprint)
            #expect(t.header.levelsPresent == l && t.header.formatVersion == format)
            #expect(t.header.seed == e.header.seed && t.header.width == e.header.width)
            let d = try Fixtures.decodeAll(cut, zShape: e.zShape, levelShape: e.levelShape, indexes: e.levelIndexes)
            #expect(d.z == e.zSymbols)
            #expect(d.levels == Array(e.levelSymbols.prefix(l)))
            // Cutting a cut stream again is the same as cutting once.
            if l > 0 { #expect(try t.truncated(toLevels: l - 1) == (try s.truncated(toLevels: l - 1))) }
        }
        #expect(throws: StreamError.levelsNotPresent(requested: 4, present: 3)) { try s.truncated(toLevels: 4) }
    }

    @Test func truncationConvertsBetweenFormatVersions() throws {
        let v1 = try Fixtures.encodedStream(format: 1), v2 = try Fixtures.encodedStream(format: 2)
        let (s1, s2) = (try PSICStream(bytes: v1.stream), try PSICStream(bytes: v2.stream))
        // The same symbols in either container: converting gives what the encoder wrote directly.
        #expect(try s1.truncated(toLevels: 3, format: 2) == v2.stream)
        #expect(try s2.truncated(toLevels: 3, format: 1) == v1.stream)
        #expect(try s2.truncated(toLevels: 3, format: 2) == v2.stream)
        for l in 0...3 {
            #expect(try s1.truncated(toLevels: l, format: 2) == (try s2.truncated(toLevels: l)))
        }
        #expect(v1.stream.count - v2.stream.count >= 18)
        #expect(throws: StreamError.unsupportedVersion(found: 3, supported: 2)) { try s2.truncated(toLevels: 1, format: 3) }
    }

    @Test(arguments: PSICStream.readableFormatVersions)
    func partialDownloadsKeepCompleteLevels(format: UInt16) throws {
        let e = try Fixtures.encodedStream(format: format)
        let s = try PSICStream(bytes: e.stream)
        let twoLevels = s.levelSections[1].range.upperBound
        let partial = Array(e.stream[..<(twoLevels + 5)])
        #expect(throws: StreamError.truncated(.level(2))) { try PSICStream(bytes: partial) }
        let p = try PSICStream(bytes: partial, acceptingIncompleteLevels: true)
        #expect(p.header.levelsPresent == 2)
        #expect(try p.truncated(toLevels: 2) == (try s.truncated(toLevels: 2)))
        // A cut inside z or the header is not recoverable.
        #expect(throws: StreamError.truncated(.z)) {
            try PSICStream(bytes: Array(e.stream[..<(e.header.byteCount + 3)]), acceptingIncompleteLevels: true)
        }
    }

    @Test func refusesOtherModelsAndVersions() throws {
        let e = try Fixtures.encodedStream()
        let other: [UInt8] = [9, 9, 9, 9, 9, 9, 9, 9]
        do {
            _ = try PSICStream(bytes: e.stream, expectedFingerprint: other)
            Issue.record("accepted another model")
        } catch {
            #expect(error == .modelMismatch(stream: Fixtures.fingerprint, model: other))
            #expect(error.description.contains("0102bcc578072588") && error.description.contains("0909090909090909"))
        }
        var v3 = e.stream
        v3[4] = 3
        do {
            _ = try PSICStream(bytes: v3)
            Issue.record("accepted version 3")
        } catch {
            #expect(error == .unsupportedVersion(found: 3, supported: 2))
            #expect(error.description.contains("newer"))
        }
        v3[4] = 0
        #expect(throws: StreamError.unsupportedVersion(found: 0, supported: 2)) { try PSICStream(bytes: v3) }
        let v1 = try Fixtures.encodedStream(format: 1).stream
        #expect(throws: StreamError.unsupportedFlags(1)) { try PSICStream(bytes: Fixtures.patchHeader(v1, at: 6, 1, size: 2)) }
        var flagged = e.header
        flagged.flags = 1
        #expect(throws: StreamError.unsupportedFlags(1)) { try PSICStream(bytes: try Fixtures.replacingHeader(of: e.stream, with: flagged)) }
        var v4 = e.header
        v4.formatVersion = 4
        #expect(throws: EntropyCodingError.self) { try PSICStream.write(header: v4, zSection: CodedSection(substreams: []), levelSections: []) }
        #expect(throws: StreamError.badMagic) { try PSICStream(bytes: Array("PNG!xxxx".utf8)) }
        #expect(throws: StreamError.badMagic) { try PSICStream(bytes: [0x50, 0x00]) }
        #expect(throws: StreamError.truncated(.header)) { try PSICStream(bytes: []) }
        #expect(throws: StreamError.truncated(.header)) { try PSICStream(bytes: Array("PSI".utf8)) }
    }

    @Test func refusesOversizedAndInconsistentVersion1Headers() throws {
        let e = try Fixtures.encodedStream(format: 1)
        #expect(throws: StreamError.tooLarge(what: "image width", value: 70000, limit: 65536)) {
            try PSICStream(bytes: Fixtures.patchHeader(e.stream, at: 16, 70000))
        }
        #expect(throws: StreamError.tooLarge(what: "image width", value: Int(UInt32.max), limit: 65536)) {
            try PSICStream(bytes: Fixtures.patchHeader(e.stream, at: 16, .max))
        }
        var big = Fixtures.patchHeader(e.stream, at: 16, 65536)
        big = Fixtures.patchHeader(big, at: 20, 65536)
        #expect(throws: StreamError.tooLarge(what: "pixel count", value: 1 << 32, limit: 1 << 28)) { try PSICStream(bytes: big) }
        #expect(throws: StreamError.self) { try PSICStream(bytes: Fixtures.patchHeader(e.stream, at: 24, 999, size: 2)) }
        #expect(throws: StreamError.self) { try PSICStream(bytes: Fixtures.patchHeader(e.stream, at: 28, 9, size: 1)) }
        #expect(throws: StreamError.self) { try PSICStream(bytes: Fixtures.patchHeader(e.stream, at: 29, 0, size: 1)) }
        #expect(throws: StreamError.self) { try PSICStream(bytes: Fixtures.patchHeader(e.stream, at: 16, 0)) }
        #expect(throws: StreamError.corrupt(reason: "3 bytes follow the last level")) {
            try PSICStream(bytes: e.stream + [1, 2, 3])
        }
    }

    @Test func refusesOversizedAndInconsistentVersion2Headers() throws {
        let e = try Fixtures.encodedStream()
        func refusal(_ edit: (inout StreamHeader) -> Void) throws -> StreamError? {
            var h = e.header
            edit(&h)
            do {
                _ = try PSICStream(bytes: try Fixtures.replacingHeader(of: e.stream, with: h))
                return nil
            } catch let error as StreamError {
                return error
            }
        }
        #expect(try refusal { $0.width = 70000 } == .tooLarge(what: "image width", value: 70000, limit: 65536))
        #expect(try refusal { $0.width = Int(UInt32.max) + 5 } == .tooLarge(what: "image width", value: Int(Int32.max), limit: 65536))
        #expect(try refusal { $0.width = 65536; $0.height = 65536 } == .tooLarge(what: "pixel count", value: 1 << 32, limit: 1 << 28))
        #expect(try refusal { $0.width = 0 } == .corrupt(reason: "image width is 0"))
        #expect(try refusal { $0.levelsPresent = 9 } == .corrupt(reason: "9 levels present of 4"))
        #expect(try refusal { $0.levelsTotal = 0 } == .corrupt(reason: "level count 0 is outside 1...64"))
        #expect(try refusal { $0.levelsTotal = 65 } == .corrupt(reason: "level count 65 is outside 1...64"))
        // The latent grid is implied by the image size: the parser derives it, never reads it.
        #expect(try refusal { $0.latentWidth = 999 } == nil)
        // A varint with a needless zero group, with the checksum made to match.
        var h = e.header.serialized()
        h.replaceSubrange(15..<17, with: [h[15] | 0x80, h[16] | 0x80, 0])
        h.replaceSubrange((h.count - 4)..., with: withUnsafeBytes(of: CRC32.checksum(h[..<(h.count - 4)]).littleEndian, Array.init))
        #expect(throws: StreamError.corrupt(reason: "image width in the header is not minimally encoded")) {
            try PSICStream(bytes: h + e.stream[e.header.byteCount...])
        }
        #expect(throws: StreamError.corrupt(reason: "3 bytes follow the last level")) {
            try PSICStream(bytes: e.stream + [1, 2, 3])
        }
    }

    @Test func varintsRoundTripAtTheirBoundaries() throws {
        for v: UInt64 in [0, 1, 127, 128, 16383, 16384, 1 << 35, .max - 1, .max] {
            var w = ByteWriter()
            w.appendVarint(v)
            #expect(w.bytes.count == ByteWriter.varintSize(v))
            var r = ByteReader(w.bytes)
            #expect(try r.readVarint(in: .header, field: "x") == v && r.remaining == 0)
        }
        #expect(ByteWriter.varintSize(127) == 1 && ByteWriter.varintSize(128) == 2 && ByteWriter.varintSize(.max) == 10)
        var over = ByteReader([UInt8](repeating: 0xff, count: 9) + [0x02])
        #expect(throws: StreamError.corrupt(reason: "x in the header overflows 64 bits")) { try over.readVarint(in: .header, field: "x") }
        var cut = ByteReader([0x80, 0x80])
        #expect(throws: StreamError.truncated(.z)) { try cut.readVarint(in: .z, field: "x") }
    }

    @Test(arguments: PSICStream.readableFormatVersions)
    func checksumsDetectEveryBitFlip(format: UInt16) throws {
        let e = try Fixtures.encodedStream(width: 64, height: 64, levels: 2, format: format)
        let s = try PSICStream(bytes: e.stream)
        // Flip every bit of the header and of every section container, and sampled bits of every substream.
        for bit in 0..<(e.header.byteCount * 8) {
            var b = e.stream
            b[bit / 8] ^= 1 << UInt8(bit % 8)
            #expect(throws: StreamError.self) { try PSICStream(bytes: b) }
        }
        for (l, section) in s.levelSections.enumerated() {
            let coded = Set(section.substreamRanges.flatMap { $0 })
            for byte in section.range where !coded.contains(byte) {
                for bit in 0..<8 {
                    var b = e.stream
                    b[byte] ^= 1 << UInt8(bit)
                    #expect(throws: StreamError.self) { try PSICStream(bytes: b) }
                }
            }
            for i in 0..<section.substreamCount {
                let range = section.substreamRanges[i]
                for byte in stride(from: range.lowerBound, to: range.upperBound, by: max(1, range.count / 7)) {
                    var b = e.stream
                    b[byte] ^= 0x10
                    #expect(throws: StreamError.checksumMismatch(.level(l), substream: format == 1 ? i : nil)) {
                        try PSICStream(bytes: b)
                    }
                }
            }
        }
        var h = e.stream
        h[format == 1 ? 20 : 16] ^= 1     // height, checksum not fixed
        #expect(throws: StreamError.checksumMismatch(.header, substream: nil)) { try PSICStream(bytes: h) }
    }

    @Test(arguments: PSICStream.readableFormatVersions)
    func everyPrefixIsRefusedAsTruncated(format: UInt16) throws {
        let e = try Fixtures.encodedStream(width: 64, height: 64, levels: 2, format: format)
        let s = try PSICStream(bytes: e.stream)
        let boundaries = [s.zSection.range.upperBound] + s.levelSections.map(\.range.upperBound)
        for n in 0..<e.stream.count {
            do {
                _ = try PSICStream(bytes: Array(e.stream[..<n]))
                Issue.record("prefix \(n) accepted")
            } catch {
                switch error {
                case .truncated: break
                default: Issue.record("prefix \(n): \(error)")
                }
            }
            // Prefixes ending exactly at a section boundary are valid once the header agrees.
            _ = boundaries
        }
    }

    @Test func writerRefusesInconsistentInput() throws {
        let e = try Fixtures.encodedStream(width: 64, height: 64, levels: 1)
        var h = e.header
        h.levelsPresent = 2
        let empty = CodedSection(substreams: [])
        #expect(throws: EntropyCodingError.self) { try PSICStream.write(header: h, zSection: empty, levelSections: [empty, empty]) }
        h = e.header
        h.modelFingerprint = [1, 2, 3]
        #expect(throws: EntropyCodingError.self) { try PSICStream.write(header: h, zSection: empty, levelSections: [empty]) }
    }
}
