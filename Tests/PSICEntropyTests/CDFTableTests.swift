import Testing
@testable import PSICEntropy

@Suite struct CDFTableTests {
    @Test func buildsFromPaddedModelArrays() throws {
        // Two tables, stride 5: {0, 100, 65536} (1 symbol + escape) and {0, 1, 2, 65536}.
        let set = try CDFTableSet(rows: 2, stride: 5, cdf: [0, 100, 65536, 0, 0, 0, 1, 2, 65536, 0],
                                  lengths: [2, 3], offsets: [-1, 4])
        #expect(set.count == 2)
        #expect(set[0].regularValues == -1...(-1))
        #expect(set[1].regularValues == 4...5)
        #expect(set[1].frequency(ofIndex: 2) == 65534)
    }

    @Test func refusesInvalidTables() {
        func make(_ cdf: [Int32], length: Int32, offset: Int32 = 0, stride: Int = 5) -> CDFTableError? {
            do {
                _ = try CDFTableSet(rows: 1, stride: stride, cdf: cdf, lengths: [length], offsets: [offset])
                return nil
            } catch { return error }
        }
        #expect(make([1, 100, 65536, 0, 0], length: 2) == .doesNotStartAtZero(table: 0, found: 1))
        #expect(make([0, 100, 65535, 0, 0], length: 2) == .doesNotEndAtTotal(table: 0, found: 65535))
        #expect(make([0, 100, 100, 65536, 0], length: 3) == .zeroFrequency(table: 0, symbolIndex: 1))
        #expect(make([0, 70000, 60000, 65536, 0], length: 3) == .zeroFrequency(table: 0, symbolIndex: 1))
        #expect(make([0, 100, 65536, 0, 7], length: 2) == .notZeroPadded(table: 0, position: 4))
        #expect(make([0, 65536, 0, 0, 0], length: 1) == .lengthOutOfRange(table: 0, length: 1, stride: 5))
        #expect(make([0, 1, 2, 3, 65536], length: 5) == .lengthOutOfRange(table: 0, length: 5, stride: 5))
        #expect(make([0, 100, 65536, 0, 0], length: 2, offset: 70000) == .offsetOutOfRange(table: 0, offset: 70000, length: 2))
        #expect(make([0, 100, 65536, 0], length: 2) == .shapeMismatch(what: "cdf", expected: 5, found: 4))
        do {
            _ = try CDFTableSet(rows: 0, stride: 5, cdf: [], lengths: [], offsets: [])
            Issue.record("empty set accepted")
        } catch {
            #expect(error == .tableCountOutOfRange(count: 0, limit: CDFTableSet.maxTables))
            #expect(error.description.contains("re-export"))
        }
    }

    @Test func bucketLookupMatchesBinarySearchForEverySlot() {
        var rng = SplitMixRNG(seed: 5)
        let sets = [Fixtures.gaussian, Fixtures.randomTables(8, rng: &rng)]
        for set in sets {
            for t in 0..<set.count {
                for slot in 0..<65536 {
                    let s = set[t].index(forSlot: UInt16(slot))
                    #expect(set[t].cdf[s] <= UInt32(slot) && UInt32(slot) < set[t].cdf[s + 1])
                    if set.index(table: t, slot: UInt32(slot)) != s {
                        Issue.record("table \(t) slot \(slot)")
                        return
                    }
                }
            }
        }
    }

    @Test func inverseCDFMapsEscapeToLastRegularSymbol() {
        let t = Fixtures.gaussian[10]
        #expect(t.symbol(forCumulative: 65535) == t.regularValues.upperBound)
        #expect(t.symbol(forCumulative: 0) == t.regularValues.lowerBound)
        let mid = t.symbol(forCumulative: 32768)
        #expect(mid == 0)                    // zero-mean symmetric table
        #expect(Fixtures.gaussian.sample(table: 10, uniform16: 65535) == t.regularValues.upperBound)
    }

    @Test func lookupSpeedComparison() {
        // Informative: bucket lookup vs binary search over the model's tables.
        let set = Fixtures.gaussian
        var rng = SplitMixRNG(seed: 1)
        let queries = (0..<200_000).map { _ in (Int.random(in: 0..<36, using: &rng), UInt32.random(in: 0..<65536, using: &rng)) }
        let clock = ContinuousClock()
        var sum = 0
        let bucket = clock.measure { for (t, s) in queries { sum &+= set.index(table: t, slot: s) } }
        let binary = clock.measure { for (t, s) in queries { sum &+= set[t].index(forSlot: UInt16(s)) } }
        print("lookup of \(queries.count) slots: buckets \(bucket), binary search \(binary) (checksum \(sum))")
    }
}
