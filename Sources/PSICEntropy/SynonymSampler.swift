/// The seeded sampler of untransmitted levels (docs/integer-entropy-model.md, "splitmix64-
/// inverse-cdf-v1"): a counter-based PRNG keyed by (seed, level, channel, row, column), so every
/// backend draws the same numbers in any order.
public enum SynonymSampler {
    /// The model file's name for this sampler.
    public static let identifier = "splitmix64-inverse-cdf-v1"

    /// splitmix64's finaliser, wrapping UInt64 arithmetic.
    @inline(__always)
    public static func splitmix64(_ value: UInt64) -> UInt64 {
        var x = value &+ 0x9E37_79B9_7F4A_7C15
        x = (x ^ (x >> 30)) &* 0xBF58_476D_1CE4_E5B9
        x = (x ^ (x >> 27)) &* 0x94D0_49BB_1331_11EB
        return x ^ (x >> 31)
    }

    /// `(level << 56) | (channel << 40) | (row << 20) | column`, channel within the level.
    /// Fields must fit (level < 256, channel < 2^16, row and column < 2^20); latent grids of the
    /// format's largest image (4096²) do.
    @inline(__always)
    public static func counter(level: Int, channel: Int, row: Int, column: Int) -> UInt64 {
        UInt64(truncatingIfNeeded: level) << 56 | UInt64(truncatingIfNeeded: channel) << 40
            | UInt64(truncatingIfNeeded: row) << 20 | UInt64(truncatingIfNeeded: column)
    }

    /// The 16-bit uniform of one element: `splitmix64(seed ^ splitmix64(counter)) >> 48`.
    @inline(__always)
    public static func uniform16(seed: UInt64, level: Int, channel: Int, row: Int, column: Int) -> UInt16 {
        UInt16(truncatingIfNeeded: splitmix64(seed ^ splitmix64(counter(level: level, channel: channel, row: row, column: column))) >> 48)
    }

    /// `indexes` moved `steps` tables up the scale grid (wider; negative: narrower), clamped to the
    /// `tableCount` tables: the sampler's table for a decode with a detail spread. Integer, so every
    /// backend widens alike. An index outside the tables stays as it is, for `sampleLevel` to refuse.
    public static func spread(_ indexes: [Int32], by steps: Int, tableCount: Int) -> [Int32] {
        guard steps != 0 else { return indexes }
        let top = Int32(clamping: tableCount - 1), shift = Int32(clamping: steps)
        return indexes.map { (0...top).contains($0) ? min(max($0 &+ shift, 0), top) : $0 }
    }

    /// Samples a whole level: element `k` of the CHW block `shape` from table `tableIndexes[k]`.
    /// The symbols are what a decoder adds to the means (`16·q + μ`).
    public static func sampleLevel(tableIndexes: [Int32], shape: LatentShape, tables: CDFTableSet,
                                   seed: UInt64, level: Int) throws(EntropyCodingError) -> [Int32] {
        guard shape.isValid else { throw .invalidShape(shape) }
        guard tableIndexes.count == shape.count else {
            throw .shapeMismatch(what: "table indexes", expected: shape.count, found: tableIndexes.count)
        }
        let count = Int32(tables.count)
        if let bad = tableIndexes.first(where: { $0 < 0 || $0 >= count }) {
            throw .tableIndexOutOfRange(index: bad, tableCount: tables.count)
        }
        var out = [Int32](repeating: 0, count: shape.count)
        let plane = shape.height * shape.width
        out.withUnsafeMutableBufferPointer { buffer in
            nonisolated(unsafe) let values = buffer
            _ = parallelMap(min(shape.channels, 16)) { part in
                for c in stride(from: part, to: shape.channels, by: min(shape.channels, 16)) {
                    for r in 0..<shape.height {
                        for x in 0..<shape.width {
                            let e = c * plane + r * shape.width + x
                            let u = uniform16(seed: seed, level: level, channel: c, row: r, column: x)
                            values[e] = tables.sample(table: Int(tableIndexes[e]), uniform16: u)
                        }
                    }
                }
                return 0
            }
        }
        return out
    }
}
