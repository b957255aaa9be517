/// One validated integer CDF table (docs/integer-entropy-model.md): symbols
/// `offset ..< offset + length − 1`, then the escape symbol at index `length − 1`; `cdf` has
/// `length + 1` entries rising strictly from 0 to 2^16, so every symbol has frequency ≥ 1.
public struct CDFTable: Sendable, Equatable {
    /// Bits of probability precision: every CDF sums to 2^16.
    public static let precisionBits = 16
    /// The CDF's final value, 2^16.
    public static let total: UInt32 = 1 << 16
    /// Symbol values of every table lie in ±2^16, so escape distances stay small (EscapeCode).
    public static let valueLimit = 1 << 16
    /// Decoding maps a 16-bit slot to a symbol through 2^10 buckets of 64 slots, then a short
    /// forward scan: 2 KiB per table (256 KiB for 128 Gaussian tables) stays in L2, where a full
    /// 2^16 table would not (see EntropyBenchmark for the measured comparison).
    static let bucketBits = 10
    static let bucketShift = UInt32(precisionBits - bucketBits)

    /// Value of symbol index 0.
    public let offset: Int32
    /// Number of symbols, escape included.
    public let length: Int
    /// Cumulative frequencies, `length + 1` entries from 0 to 2^16.
    public let cdf: [UInt32]

    /// Validates `cdf` (at least `length + 1` entries; entries past `length + 1` must be zero
    /// padding). `index` only labels errors.
    public init(cdf: some Collection<Int32>, length: Int, offset: Int32, index: Int = 0) throws(CDFTableError) {
        let stride = cdf.count
        guard length >= 2, length + 1 <= stride else {
            throw .lengthOutOfRange(table: index, length: length, stride: stride)
        }
        let lo = Int(offset), hi = Int(offset) + length - 1
        guard lo >= -Self.valueLimit, hi <= Self.valueLimit else {
            throw .offsetOutOfRange(table: index, offset: lo, length: length)
        }
        var values: [UInt32] = []
        values.reserveCapacity(length + 1)
        var position = 0
        var previous: Int32 = 0
        for v in cdf {
            if position == 0 {
                guard v == 0 else { throw .doesNotStartAtZero(table: index, found: v) }
            } else if position <= length {
                guard v > previous else { throw .zeroFrequency(table: index, symbolIndex: position - 1) }
                // Strictly increasing up to exactly 2^16 also keeps every earlier entry below 2^16.
                if position == length, v != Int32(Self.total) { throw .doesNotEndAtTotal(table: index, found: v) }
            } else {
                guard v == 0 else { throw .notZeroPadded(table: index, position: position) }
            }
            if position <= length { values.append(UInt32(v)) }
            previous = v
            position += 1
        }
        self.offset = offset
        self.length = length
        self.cdf = values
    }

    /// Index of the escape symbol.
    public var escapeIndex: Int { length - 1 }
    /// The values coded directly (everything else is escaped).
    public var regularValues: ClosedRange<Int32> { offset...(offset + Int32(length) - 2) }

    /// Frequency of symbol index `i`.
    public func frequency(ofIndex i: Int) -> UInt32 { cdf[i + 1] - cdf[i] }

    /// The symbol index `s` with `cdf[s] ≤ slot < cdf[s+1]` (binary search; decoding uses the
    /// set's bucket lookup instead).
    public func index(forSlot slot: UInt16) -> Int {
        var lo = 0, hi = length          // invariant: cdf[lo] ≤ slot < cdf[hi]
        let s = UInt32(slot)
        while hi - lo > 1 {
            let mid = (lo + hi) / 2
            if cdf[mid] <= s { lo = mid } else { hi = mid }
        }
        return lo
    }

    /// The sampler's inverse CDF: the value of the symbol whose interval holds `u`; the escape
    /// maps to the largest regular value (R_k for the Gaussian tables), as the spec says.
    public func symbol(forCumulative u: UInt16) -> Int32 {
        offset + Int32(min(index(forSlot: u), length - 2))
    }

    /// First symbol index of each 64-slot bucket.
    func bucketStarts() -> [UInt16] {
        var starts = [UInt16](repeating: 0, count: 1 << Self.bucketBits)
        var s = 0
        for b in 0..<starts.count {
            let slot = UInt32(b) << Self.bucketShift
            while cdf[s + 1] <= slot { s += 1 }
            starts[b] = UInt16(s)
        }
        return starts
    }
}
