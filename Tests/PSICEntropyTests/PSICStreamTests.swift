import Testing
@testable import PSICEntropy

@Suite struct PSICStreamTests {
    @Test func crc32CheckValue() {
        #expect(CRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)
        #expect(CRC32.checksum([UInt8]()) == 0)
    }

    @Test func roundTripsAndDescribesItself() throws {
        let e = try Fixtures.encodedStream()
        let s = try PSICStream(bytes: e.stream, expectedFingerprint: Fixtures.fingerprint)
        #expect(s.header == e.header)
        #expect(try PSICStream.peekHeader(e.stream) == e.header)
        #expect(s.levelSections.map(\.substreamCount) == [1, 2, 3])
        #expect(StreamHeader.byteCount + s.zSection.byteCount + s.levelSections.reduce(0) { $0 + $1.byteCount } == e.stream.count)
        // A section is its table then its substreams' bytes; the table holds the count and 8 bytes an entry.
        for section in [s.zSection] + s.levelSections {
            let coded = (0..<section.substreamCount).reduce(0) { $0 + section.substream($1).count }
            #expect(section.tableByteCount == 2 + 8 * section.substreamCount)
            #expect(section.tableByteCount + coded == section.byteCount)
        }
        let d = try Fixtures.decodeAll(e.stream, zShape: e.zShape, levelShape: e.levelShape, indexes: e.levelIndexes)
        #expect(d.z == e.zSymbols)
        #expect(d.levels == e.levelSymbols)
    }

    @Test func truncationGivesValidStreamsWithIdenticalLevels() throws {
        let e = try Fixtures.encodedStream()
        let s = try PSICStream(bytes: e.stream)
        var previous = Int.max
        for l in stride(from: 3, through: 0, by: -1) {
            let cut = try s.truncated(toLevels: l)
            #expect(cut.count < previous)
            previous = cut.count
            let t = try PSICStream(bytes: cut, expectedFingerprint: Fixtures.fingerprint)
            #expect(t.header.levelsPresent == l)
            #expect(t.header.seed == e.header.seed && t.header.width == e.header.width)
            let d = try Fixtures.decodeAll(cut, zShape: e.zShape, levelShape: e.levelShape, indexes: e.levelIndexes)
            #expect(d.z == e.zSymbols)
            #expect(d.levels == Array(e.levelSymbols.prefix(l)))
            // Cutting a cut stream again is the same as cutting once.
            if l > 0 { #expect(try t.truncated(toLevels: l - 1) == (try s.truncated(toLevels: l - 1))) }
        }
        #expect(throws: StreamError.levelsNotPresent(requested: 4, present: 3)) { try s.truncated(toLevels: 4) }
    }

    @Test func partialDownloadsKeepCompleteLevels() throws {
        let e = try Fixtures.encodedStream()
        let s = try PSICStream(bytes: e.stream)
        let twoLevels = s.levelSections[1].range.upperBound
        let partial = Array(e.stream[..<(twoLevels + 5)])
        #expect(throws: StreamError.truncated(.level(2))) { try PSICStream(bytes: partial) }
        let p = try PSICStream(bytes: partial, acceptingIncompleteLevels: true)
        #expect(p.header.levelsPresent == 2)
        #expect(try p.truncated(toLevels: 2) == (try s.truncated(toLevels: 2)))
        // A cut inside z or the header is not recoverable.
        #expect(throws: StreamError.truncated(.z)) {
            try PSICStream(bytes: Array(e.stream[..<(StreamHeader.byteCount + 3)]), acceptingIncompleteLevels: true)
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
        var v2 = e.stream
        v2[4] = 2
        do {
            _ = try PSICStream(bytes: v2)
            Issue.record("accepted version 2")
        } catch {
            #expect(error == .unsupportedVersion(found: 2, supported: 1))
            #expect(error.description.contains("newer"))
        }
        #expect(throws: StreamError.unsupportedFlags(1)) { try PSICStream(bytes: Fixtures.patchHeader(e.stream, at: 6, 1, size: 2)) }
        #expect(throws: StreamError.badMagic) { try PSICStream(bytes: Array("PNG!xxxx".utf8)) }
        #expect(throws: StreamError.badMagic) { try PSICStream(bytes: [0x50, 0x00]) }
        #expect(throws: StreamError.truncated(.header)) { try PSICStream(bytes: []) }
        #expect(throws: StreamError.truncated(.header)) { try PSICStream(bytes: Array("PSI".utf8)) }
    }

    @Test func refusesOversizedAndInconsistentHeaders() throws {
        let e = try Fixtures.encodedStream()
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

    @Test func checksumsDetectEveryBitFlip() throws {
        let e = try Fixtures.encodedStream(width: 64, height: 64, levels: 2)
        let s = try PSICStream(bytes: e.stream)
        // Flip every bit of the header, and sampled bits of every substream.
        for bit in 0..<(StreamHeader.byteCount * 8) {
            var b = e.stream
            b[bit / 8] ^= 1 << UInt8(bit % 8)
            #expect(throws: StreamError.self) { try PSICStream(bytes: b) }
        }
        for (l, section) in s.levelSections.enumerated() {
            for i in 0..<section.substreamCount {
                let range = section.substreamRanges[i]
                for byte in stride(from: range.lowerBound, to: range.upperBound, by: max(1, range.count / 7)) {
                    var b = e.stream
                    b[byte] ^= 0x10
                    #expect(throws: StreamError.checksumMismatch(.level(l), substream: i)) { try PSICStream(bytes: b) }
                }
            }
        }
        var h = e.stream
        h[20] ^= 1                        // height, checksum not fixed
        #expect(throws: StreamError.checksumMismatch(.header, substream: nil)) { try PSICStream(bytes: h) }
    }

    @Test func everyPrefixIsRefusedAsTruncated() throws {
        let e = try Fixtures.encodedStream(width: 64, height: 64, levels: 2)
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
        #expect(throws: EntropyCodingError.self) { try PSICStream.write(header: h, zSection: [], levelSections: [[], []]) }
        h = e.header
        h.modelFingerprint = [1, 2, 3]
        #expect(throws: EntropyCodingError.self) { try PSICStream.write(header: h, zSection: [], levelSections: [[]]) }
    }
}
