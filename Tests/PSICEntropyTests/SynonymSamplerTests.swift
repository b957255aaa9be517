import Testing
@testable import PSICEntropy

@Suite struct SynonymSamplerTests {
    @Test func splitmix64ByHand() {
        // splitmix64(0), step by step (wrapping UInt64 arithmetic):
        //   x = 0 + 0x9E3779B97F4A7C15
        //   x ^ (x >> 30)           = 0x9E3779BB07979AF0
        //   · 0xBF58476D1CE4E5B9    = 0x6F68261B57E7A770
        //   x ^ (x >> 27)           = 0x6F682616BAE3641A
        //   · 0x94D049BB133111EB    = 0xE220A838BF5C9DDE
        //   x ^ (x >> 31)           = 0xE220A8397B1DCDAF   (SplitMix64's well-known first output for seed 0)
        #expect(SynonymSampler.splitmix64(0) == 0xE220_A839_7B1D_CDAF)
    }

    @Test func uniformsMatchTheNumPyReference() {
        // Values from Tools/train/psic_train/intmodel.py (splitmix64, sampler_counter).
        #expect(SynonymSampler.counter(level: 3, channel: 5, row: 7, column: 11) == 0x0300_0500_0070_000B)
        #expect(SynonymSampler.splitmix64(0x0300_0500_0070_000B) == 0x66C4_1757_A07A_EBAC)
        #expect(SynonymSampler.uniform16(seed: 0x0123_4567_89AB_CDEF, level: 3, channel: 5, row: 7, column: 11) == 62340)
        #expect(SynonymSampler.uniform16(seed: 0, level: 0, channel: 0, row: 0, column: 0) == 42758)
        #expect(SynonymSampler.uniform16(seed: 42, level: 1, channel: 2, row: 3, column: 4) == 36839)
        #expect(SynonymSampler.uniform16(seed: .max, level: 7, channel: 19, row: 31, column: 47) == 54740)
    }

    @Test func sampleLevelIsTheInverseCDFOfEachElement() throws {
        let shape = LatentShape(channels: 3, height: 5, width: 7)
        let idx = (0..<shape.count).map { Int32($0 % 64) }
        let s = try SynonymSampler.sampleLevel(tableIndexes: idx, shape: shape, tables: Fixtures.gaussian, seed: 77, level: 2)
        for c in 0..<3 { for r in 0..<5 { for x in 0..<7 {
            let e = (c * 5 + r) * 7 + x
            let u = SynonymSampler.uniform16(seed: 77, level: 2, channel: c, row: r, column: x)
            #expect(s[e] == Fixtures.gaussian[Int(idx[e])].symbol(forCumulative: u))
        } } }
    }

    @Test func spreadMovesEveryIndexUpTheGridWithinTheTables() {
        let idx: [Int32] = [0, 1, 60, 126, 127]
        #expect(SynonymSampler.spread(idx, by: 0, tableCount: 128) == idx)
        #expect(SynonymSampler.spread(idx, by: 5, tableCount: 128) == [5, 6, 65, 127, 127])
        #expect(SynonymSampler.spread(idx, by: -3, tableCount: 128) == [0, 0, 57, 123, 124])
        // a corrupt index is not clamped into a valid one
        #expect(SynonymSampler.spread([-1, 128], by: 2, tableCount: 128) == [-1, 128])
    }

    @Test func aWiderTableSamplesNoCloserToZeroFromTheSameUniforms() throws {
        // Inverse-CDF sampling from one uniform: a wider Gaussian's symbol lies as far from 0 or
        // further; what --detail-spread relies on to widen details. (Not always on the same side:
        // near u = 1/2 the integer tables' intervals of symbol 0 are not all centred alike.)
        let shape = LatentShape(channels: 4, height: 8, width: 8)
        let idx = (0..<shape.count).map { Int32(20 + $0 % 40) }
        let base = try SynonymSampler.sampleLevel(tableIndexes: idx, shape: shape, tables: Fixtures.gaussian, seed: 5, level: 1)
        let wide = try SynonymSampler.sampleLevel(tableIndexes: SynonymSampler.spread(idx, by: 6, tableCount: Fixtures.gaussian.count),
                                                  shape: shape, tables: Fixtures.gaussian, seed: 5, level: 1)
        for (a, b) in zip(base, wide) { #expect(abs(b) >= abs(a)) }
        #expect(wide.map { abs(Int($0)) }.reduce(0, +) > base.map { abs(Int($0)) }.reduce(0, +))
    }
}
