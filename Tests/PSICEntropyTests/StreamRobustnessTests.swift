import Testing
@testable import PSICEntropy

/// Damaged, truncated and random streams: each must end in a typed error or a decode, with
/// bounded work, never a trap.
@Suite struct StreamRobustnessTests {
    /// Parses and decodes; returns the StreamError if any (other error types fail the test).
    func outcome(_ bytes: [UInt8], _ e: Fixtures.Encoded) -> StreamError? {
        do {
            _ = try Fixtures.decodeAll(bytes, zShape: e.zShape, levelShape: e.levelShape, indexes: e.levelIndexes)
            return nil
        } catch let error as StreamError {
            #expect(!error.description.isEmpty)
            return error
        } catch {
            Issue.record("untyped error \(error)")
            return nil
        }
    }

    @Test(arguments: PSICStream.readableFormatVersions)
    func randomMutationsGiveTypedErrors(format: UInt16) throws {
        let e = try Fixtures.encodedStream(width: 96, height: 64, levels: 2, format: format)
        var rng = SplitMixRNG(seed: 99)
        var errors = 0
        for _ in 0..<1500 {
            var b = e.stream
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                switch Int.random(in: 0..<4, using: &rng) {
                case 0: b[Int.random(in: 0..<b.count, using: &rng)] ^= UInt8(1) << UInt8.random(in: 0..<8, using: &rng)
                case 1: b[Int.random(in: 0..<b.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                case 2: b.removeLast(Int.random(in: 0..<min(40, b.count), using: &rng))
                default: b.insert(UInt8.random(in: 0...255, using: &rng), at: Int.random(in: 0...b.count, using: &rng))
                }
                if b.isEmpty { break }
            }
            if outcome(b, e) != nil { errors += 1 }
        }
        #expect(errors > 1400)
    }

    @Test(arguments: PSICStream.readableFormatVersions)
    func corruptDataWithValidChecksumsDecodesBoundedly(format: UInt16) throws {
        // Past the CRC (as a deliberate forger would be), the entropy decoder itself must cope.
        let e = try Fixtures.encodedStream(width: 96, height: 64, levels: 2, format: format)
        let s = try PSICStream(bytes: e.stream)
        var rng = SplitMixRNG(seed: 4)
        var detected = 0
        for _ in 0..<300 {
            let section = s.levelSections[Int.random(in: 0..<2, using: &rng)]
            let range = section.substreamRanges[Int.random(in: 0..<section.substreamCount, using: &rng)]
            var b = e.stream
            b[Int.random(in: range, using: &rng)] ^= UInt8.random(in: 1...255, using: &rng)
            // Recompute the CRC: version 1 keeps one per substream in the section's table,
            // version 2 one per section after its substreams.
            let i = section.substreamRanges.firstIndex(of: range)!
            let entry = format == 1 ? section.range.lowerBound + 2 + 8 * i + 4 : section.range.upperBound - 4
            let crc = CRC32.checksum(format == 1 ? b[range] : b[section.range.lowerBound..<entry])
            for j in 0..<4 { b[entry + j] = UInt8(truncatingIfNeeded: crc >> (8 * j)) }
            if case .corrupt? = outcome(b, e) { detected += 1 }
        }
        // rANS with a final-state check detects nearly every change; a few may decode to other symbols.
        #expect(detected > 250)
    }

    @Test func randomBytesGiveTypedErrors() throws {
        let e = try Fixtures.encodedStream(width: 64, height: 64, levels: 1)
        var rng = SplitMixRNG(seed: 123)
        for _ in 0..<2000 {
            var b = (0..<Int.random(in: 0...300, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            if Bool.random(using: &rng), b.count >= 6 {      // get past magic and version
                b.replaceSubrange(0..<6, with: Array("PSIC".utf8) + [UInt8.random(in: 1...2, using: &rng), 0])
            }
            #expect(outcome(b, e) != nil)
        }
    }

    @Test(arguments: PSICStream.readableFormatVersions)
    func hugeDeclaredSizesAreRefusedBeforeAllocation(format: UInt16) throws {
        // A header claiming the largest image, followed by a section table claiming 4 GiB.
        let w = 16384, h = 16384
        let header = StreamHeader(modelFingerprint: Fixtures.fingerprint, width: w, height: h,
                                  latentWidth: StreamHeader.latentSide(forImageSide: w),
                                  latentHeight: StreamHeader.latentSide(forImageSide: h),
                                  levelsPresent: 1, levelsTotal: 1, seed: 0, formatVersion: format)
        var bytes = header.serialized()
        bytes += format == 1 ? [1, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]      // 1 substream of 2^32−1 bytes
            : [1, 0xff, 0xff, 0xff, 0xff, 0x0f]
        #expect(throws: StreamError.truncated(.z)) { try PSICStream(bytes: bytes) }
        bytes = header.serialized() + (format == 1 ? [0xff, 0xff] : [0xff])       // 65535 / 255 substreams
        #expect(throws: StreamError.tooLarge(what: "substream count of the z section", value: format == 1 ? 65535 : 255,
                                             limit: 64)) {
            try PSICStream(bytes: bytes)
        }
        // Version 2 lengths are varints: one claiming 2^64−1 bytes is a truncation too, not an overflow.
        if format == 2 {
            bytes = header.serialized() + [1] + [UInt8](repeating: 0xff, count: 9) + [0x01]
            #expect(throws: StreamError.truncated(.z)) { try PSICStream(bytes: bytes) }
        }
    }
}
