import Foundation
import Testing
@testable import PSICEntropy

@Suite struct RANSCoderTests {
    func roundTrip(_ values: [Int32], tables: [Int], set: CDFTableSet) throws -> [UInt8] {
        var enc = RANSEncoder(tables: set)
        for (v, t) in zip(values, tables) { try enc.encode(v, table: t) }
        let bytes = enc.finish()
        var dec = RANSDecoder(bytes: bytes[...], tables: set)
        let decoded = tables.map { dec.decode(table: $0) }
        #expect(decoded == values)
        try dec.finish()
        return bytes
    }

    @Test func roundTripsRandomTablesWithEscapesAndExtremes() throws {
        var rng = SplitMixRNG(seed: 11)
        for trial in 0..<20 {
            let set = Fixtures.randomTables(Int.random(in: 1...12, using: &rng), rng: &rng)
            let n = Int.random(in: 0...3000, using: &rng)
            var tables: [Int] = [], values: [Int32] = []
            for _ in 0..<n {
                let t = Int.random(in: 0..<set.count, using: &rng)
                let r = set[t].regularValues
                let v: Int32
                switch Int.random(in: 0..<20, using: &rng) {
                case 0: v = Int32.random(in: -(1 << 20) + 1...(1 << 20) - 1, using: &rng)
                case 1: v = [Int32(1 << 20) - 1, -(1 << 20) + 1, r.lowerBound - 1, r.upperBound + 1,
                             r.upperBound + 1 + 65535, r.upperBound + 1 + 65536, r.upperBound + 1 + 65537][Int.random(in: 0..<7, using: &rng)]
                default: v = Int32.random(in: r, using: &rng)
                }
                tables.append(t)
                values.append(v)
            }
            _ = try roundTrip(values, tables: tables, set: set)
            _ = trial
        }
    }

    @Test func emptyInputIsJustTheState() throws {
        let bytes = try roundTrip([], tables: [], set: Fixtures.small)
        #expect(bytes.count == 4)
    }

    @Test func refusesValuesBeyondTheEscapeLimitAndBadTables() {
        var enc = RANSEncoder(tables: Fixtures.small)
        #expect(throws: EntropyCodingError.valueOutOfRange(value: 1 << 20, limit: 1 << 20)) {
            try enc.encode(1 << 20, table: 0)
        }
        #expect(throws: EntropyCodingError.valueOutOfRange(value: Int32.min, limit: 1 << 20)) {
            try enc.encode(Int32.min, table: 0)
        }
        #expect(throws: EntropyCodingError.tableIndexOutOfRange(index: 6, tableCount: 6)) {
            try enc.encode(0, table: 6)
        }
    }

    @Test func rateIsCloseToEntropy() throws {
        // Symbols drawn from the tables themselves: the coded size must be within 0.2 % of the
        // ideal −Σ log2 p (the cost of rANS's integer approximation plus the 4-byte state).
        let set = Fixtures.gaussian
        var rng = SplitMixRNG(seed: 3)
        var values: [Int32] = [], tables: [Int] = []
        var ideal = 0.0
        for i in 0..<200_000 {
            let t = Int.random(in: 0..<40, using: &rng)
            let u = SynonymSampler.uniform16(seed: 9, level: 0, channel: 0, row: i >> 10, column: i & 1023)
            let v = set.sample(table: t, uniform16: u)
            let idx = Int(v - set[t].offset)
            ideal -= log2(Double(set[t].frequency(ofIndex: idx)) / 65536)
            values.append(v)
            tables.append(t)
        }
        let bytes = try roundTrip(values, tables: tables, set: set)
        let overhead = Double(bytes.count * 8) / ideal - 1
        print("rANS: \(bytes.count) bytes for \(values.count) symbols, ideal \(Int(ideal / 8)) bytes, overhead \(overhead * 100) %")
        #expect(overhead < 0.002)
    }

    @Test func garbageNeverTrapsAndIsReported() {
        var rng = SplitMixRNG(seed: 8)
        let set = Fixtures.gaussian
        var reported = 0
        for _ in 0..<500 {
            let bytes = (0..<Int.random(in: 0...64, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            var dec = RANSDecoder(bytes: bytes[...], tables: set)
            for _ in 0..<Int.random(in: 0...2000, using: &rng) { _ = dec.decode(table: Int.random(in: 0..<64, using: &rng)) }
            do { try dec.finish() } catch { reported += 1 }
        }
        #expect(reported > 490)
    }
}
