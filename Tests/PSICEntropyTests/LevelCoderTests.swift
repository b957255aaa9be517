import Testing
@testable import PSICEntropy

@Suite struct LevelCoderTests {
    func parse(_ section: CodedSection, rows: Int, format: UInt16 = PSICStream.formatVersion) throws -> StreamSection {
        var reader = ByteReader(section.serialized(format: format))
        return try StreamSection.parse(&reader, location: .level(0), rows: rows, format: format)
    }

    @Test(arguments: [1, 2, 3, 7, 16])
    func parallelSubstreamsRoundTrip(substreams: Int) throws {
        var rng = SplitMixRNG(seed: UInt64(substreams))
        let shape = LatentShape(channels: 5, height: 19, width: 23)
        let idx = (0..<shape.count).map { _ in Int32.random(in: 0..<64, using: &rng) }
        var symbols = try SynonymSampler.sampleLevel(tableIndexes: idx, shape: shape, tables: Fixtures.gaussian, seed: 1, level: 0)
        symbols[0] = 4095
        symbols[shape.count - 1] = -(1 << 20) + 1
        let bytes = try LevelCoder.encode(symbols: symbols, tableIndexes: idx, shape: shape, tables: Fixtures.gaussian,
                                          substreams: substreams)
        #expect(bytes.substreams.count == substreams)
        for format in PSICStream.readableFormatVersions {
            let section = try parse(bytes, rows: shape.height, format: format)
            #expect(section.substreamCount == substreams)
            #expect(section.byteCount == bytes.byteCount(format: format))
            #expect((0..<substreams).map { Array(section.substream($0)) } == bytes.substreams)
            let decoded = try LevelCoder.decode(section, tableIndexes: idx, shape: shape, tables: Fixtures.gaussian)
            #expect(decoded == symbols)
        }
        // Version 2's container: a count byte, a varint per length, one checksum.
        #expect(bytes.byteCount(format: 2) - bytes.codedByteCount
                == 1 + bytes.substreams.map { $0.count < 128 ? 1 : $0.count < 16384 ? 2 : 3 }.reduce(0, +) + 4)
    }

    @Test func substreamCountFollowsSize() {
        #expect(LevelCoder.substreamCount(for: LatentShape(channels: 20, height: 32, width: 48)) == 3)
        #expect(LevelCoder.substreamCount(for: LatentShape(channels: 96, height: 8, width: 12)) == 1)
        #expect(LevelCoder.substreamCount(for: LatentShape(channels: 20, height: 136, width: 240)) == 16)
        #expect(LevelCoder.substreamCount(for: LatentShape(channels: 20, height: 2, width: 4096)) == 2)
    }

    @Test func smallSectionsKeepOneSubstream() throws {
        #expect(LevelCoder.substreamCount(for: LatentShape(channels: 20, height: 32, width: 48), bytes: 4095) == 1)
        #expect(LevelCoder.substreamCount(for: LatentShape(channels: 20, height: 32, width: 48), bytes: 4096) == 2)
        #expect(LevelCoder.substreamCount(for: LatentShape(channels: 20, height: 32, width: 48), bytes: 1 << 20) == 3)
        #expect(LevelCoder.substreamCount(for: LatentShape(channels: 20, height: 32, width: 48), bytes: 0) == 1)
        // A Kodak-sized level (3 substreams by size) coded with the narrowest table takes a few
        // hundred bytes: one substream. With the widest tables it takes tens of kilobytes: all three.
        let shape = LatentShape(channels: 20, height: 32, width: 48)
        for (table, expected) in [(Int32(0), 1), (Int32(63), 3)] {
            let idx = [Int32](repeating: table, count: shape.count)
            let symbols = try SynonymSampler.sampleLevel(tableIndexes: idx, shape: shape, tables: Fixtures.gaussian,
                                                         seed: 3, level: 0)
            let bytes = try LevelCoder.encode(symbols: symbols, tableIndexes: idx, shape: shape, tables: Fixtures.gaussian)
            let section = try parse(bytes, rows: shape.height)
            #expect(section.substreamCount == expected)
            let split = try LevelCoder.encode(symbols: symbols, tableIndexes: idx, shape: shape, tables: Fixtures.gaussian,
                                              substreams: 3)
            if expected == 3 {
                #expect(bytes == split)
            } else {   // two table entries (16 bytes in version 1) and two coder states fewer
                #expect(split.byteCount(format: 1) - bytes.byteCount(format: 1) >= 16)
                #expect(split.byteCount(format: 2) - bytes.byteCount(format: 2) >= 8)
            }
            #expect(try LevelCoder.decode(section, tableIndexes: idx, shape: shape, tables: Fixtures.gaussian) == symbols)
        }
    }

    @Test func zCodingUsesChannelTables() throws {
        let shape = LatentShape(channels: 6, height: 3, width: 4)
        let symbols = (0..<shape.count).map { Int32($0 % 9) - 4 }
        let bytes = try LevelCoder.encodeByChannel(symbols: symbols, shape: shape, tables: Fixtures.small)
        let decoded = try LevelCoder.decodeByChannel(try parse(bytes, rows: 3), shape: shape, tables: Fixtures.small)
        #expect(decoded == symbols)
        #expect(throws: EntropyCodingError.self) {
            try LevelCoder.encodeByChannel(symbols: symbols + symbols, shape: LatentShape(channels: 12, height: 3, width: 4),
                                           tables: Fixtures.small)
        }
    }

    @Test func refusesBadArguments() throws {
        let shape = LatentShape(channels: 1, height: 2, width: 2)
        #expect(throws: EntropyCodingError.shapeMismatch(what: "symbols", expected: 4, found: 3)) {
            try LevelCoder.encode(symbols: [0, 0, 0], tableIndexes: [0, 0, 0, 0], shape: shape, tables: Fixtures.small)
        }
        #expect(throws: EntropyCodingError.tableIndexOutOfRange(index: -1, tableCount: 6)) {
            try LevelCoder.encode(symbols: [0, 0, 0, 0], tableIndexes: [0, -1, 0, 0], shape: shape, tables: Fixtures.small)
        }
        #expect(throws: EntropyCodingError.invalidShape(LatentShape(channels: 0, height: 2, width: 2))) {
            try LevelCoder.encode(symbols: [], tableIndexes: [], shape: LatentShape(channels: 0, height: 2, width: 2),
                                  tables: Fixtures.small)
        }
        #expect(throws: EntropyCodingError.self) {
            try LevelCoder.encode(symbols: [0, 0, 0, 0], tableIndexes: [0, 0, 0, 0], shape: shape, tables: Fixtures.small,
                                  substreams: 3)
        }
    }

    @Test func benchmark() throws {
        let all = try EntropyBenchmark.run(iterations: 10)
        let single = try EntropyBenchmark.run(substreams: 1, iterations: 10)
        print("entropy benchmark: \(all)")
        print("entropy benchmark, one substream: \(single)")
        #expect(all.bitsPerSymbol > 0)
    }
}
