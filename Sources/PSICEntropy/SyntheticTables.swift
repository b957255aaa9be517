import Foundation

extension CDFTableSet {
    /// Gaussian tables built the way the exporter builds the model's (docs/integer-entropy-model.md):
    /// symbols `−R…R` with `R = ceil(6.5σ)`, the escape carrying the tails. For tests,
    /// benchmarks and fuzzing only; the codec always uses the tables shipped in the model file.
    public static func syntheticGaussian(scales: [Double]) -> CDFTableSet {
        CDFTableSet(tables: scales.map { sigma in
            let r = min(Int((6.5 * sigma).rounded(.up)), 2047)
            func phi(_ x: Double) -> Double { 0.5 * erfc(-x / 2.0.squareRoot()) }
            var p = (-r...r).map { q in phi((Double(q) + 0.5) / sigma) - phi((Double(q) - 0.5) / sigma) }
            p.append(2 * phi(-(Double(r) + 0.5) / sigma))
            return table(probabilities: p, offset: Int32(-r))
        })
    }

    /// The spec's grid of `count` scales, `0.11 · (256/0.11)^(k/(count−1))`: model files up to
    /// session 36 have 64, later ones 128 (the file's `scale_count`).
    public static func modelScales(count: Int) -> [Double] {
        (0..<count).map { 0.11 * exp(Double($0) * log(256 / 0.11) / Double(count - 1)) }
    }

    /// A table from probabilities (escape last): `max(1, round(p·2^16))`, the rounding error
    /// settled on the most probable symbols, which it costs the least.
    static func table(probabilities p: [Double], offset: Int32) -> CDFTable {
        let total = Int(CDFTable.total)
        var freq = p.map { max(1, Int(($0 * Double(total)).rounded())) }
        var excess = freq.reduce(0, +) - total
        while excess != 0 {
            let i = freq.indices.max { freq[$0] < freq[$1] }!
            let step = excess > 0 ? min(excess, freq[i] - 1) : excess
            freq[i] -= step
            excess -= step
        }
        var cdf: [Int32] = [0]
        for f in freq { cdf.append(cdf.last! + Int32(f)) }
        // Valid by construction: strictly increasing from 0 to 2^16.
        return try! CDFTable(cdf: cdf, length: freq.count, offset: offset)
    }
}
